"""The projection rule: an order's state converges whatever order its events arrive in."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from orderline_reporting.domain import states
from orderline_reporting.domain.projection import StateObservation, converge, prevails

T0 = datetime(2026, 5, 9, 8, 0, tzinfo=UTC)


def at(seconds: float, state: str) -> StateObservation:
    return StateObservation(state, T0 + timedelta(seconds=seconds))


def all_orders(observations: list[StateObservation]) -> set[str | None]:
    """The final state for every arrival order of the observations."""
    finals = set()
    for arrival in itertools.permutations(observations):
        final = converge(list(arrival))
        finals.add(final.state if final else None)
    return finals


def test_first_observation_always_prevails() -> None:
    assert prevails(None, at(0, states.ACKNOWLEDGED))


def test_state_change_arriving_before_creation_is_kept() -> None:
    changed = at(1, states.IN_PROGRESS)
    created = at(0, states.ACKNOWLEDGED)
    assert converge([changed, created]) == changed


def test_later_producer_time_wins_between_non_terminal_states() -> None:
    # held -> resumed -> held again: the last hold is the state, however they arrive.
    history = [
        at(0, states.ACKNOWLEDGED),
        at(1, states.IN_PROGRESS),
        at(2, states.HELD),
        at(3, states.IN_PROGRESS),
        at(4, states.HELD),
    ]
    assert all_orders(history) == {states.HELD}


def test_terminal_state_wins_over_a_later_non_terminal_one() -> None:
    # A skewed clock makes `held` look later than `completed`: completed still stands.
    assert all_orders([at(5, states.COMPLETED), at(6, states.HELD)]) == {states.COMPLETED}


def test_equal_times_are_decided_by_lifecycle_position() -> None:
    # order.created and the auto-approval's state change, written in one transaction.
    assert all_orders([at(0, states.ACKNOWLEDGED), at(0, states.IN_PROGRESS)]) == {
        states.IN_PROGRESS
    }


def test_full_automatic_run_converges_to_completed_in_every_arrival_order() -> None:
    run = [
        at(0, states.ACKNOWLEDGED),  # order.created
        at(0.001, states.IN_PROGRESS),  # order.state_changed
        at(0.002, states.IN_PROGRESS),  # order.approved
        at(9, states.COMPLETED),  # order.state_changed
        at(9.001, states.COMPLETED),  # order.completed
    ]
    assert all_orders(run) == {states.COMPLETED}


def test_cancellation_path_converges_to_cancelled() -> None:
    path = [
        at(0, states.ACKNOWLEDGED),
        at(1, states.IN_PROGRESS),
        at(2, states.ASSESSING_CANCELLATION),
        at(3, states.PENDING_CANCELLATION),
        at(4, states.CANCELLED),
    ]
    assert all_orders(path) == {states.CANCELLED}


def test_redelivered_observation_changes_nothing() -> None:
    held = at(2, states.HELD)
    assert not prevails(held, held)


observations = st.builds(
    StateObservation,
    state=st.sampled_from(states.ORDER_STATES),
    at=st.integers(min_value=0, max_value=20).map(lambda s: T0 + timedelta(seconds=s)),
)


@given(st.lists(observations, min_size=1, max_size=8), st.randoms())
def test_any_arrival_order_gives_the_same_final_state(
    history: list[StateObservation], rnd: random.Random
) -> None:
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert converge(shuffled) == converge(history)
