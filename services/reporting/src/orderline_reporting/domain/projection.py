"""Which state an order is in, when its events may arrive in any order.

Every order event is an observation "the order was in state S at time T", T being the time
the producer recorded the event (the envelope's `time`, written by intake in the same
transaction as the change): `order.created` observes `acknowledged`, `order.approved`
`inProgress`, `order.state_changed` its `to_state`, `order.completed` `completed`.

Events of one order reach reporting out of order (several streams, redeliveries after a nak,
a replay), so the projection keeps, per order, the observation that *prevails* by this
monotonic rule, comparing keys in order:

1. a terminal state (completed, rejected, failed, cancelled: TMF641's final states) beats
   any non-terminal one, whatever the times: nothing leaves a terminal state, so a late,
   older `held` cannot reopen a completed order even if clocks disagree;
2. otherwise the later producer time wins (intake records one order's transitions one after
   another, so their times increase: `held -> inProgress -> held` converges to the last);
3. at equal times, the state further along the lifecycle wins (intake writes `order.created`
   and the state change of an auto-approval in one transaction, possibly at the same instant).

The rule is a total order on observations, so the final state is the same for every arrival
order: applying it is commutative, associative and idempotent (a redelivery changes nothing).
Its limit: transitions of one order made on two intake replicas within their clock skew
could be ordered wrongly; intake serialises an order's transitions, so that window is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderline_reporting.domain.states import ORDER_STATES, TERMINAL_STATES

_LIFECYCLE_RANK = {state: rank for rank, state in enumerate(ORDER_STATES)}


@dataclass(frozen=True)
class StateObservation:
    state: str  # TMF641 name
    at: datetime  # producer time, timezone-aware


def precedence(observation: StateObservation) -> tuple[bool, datetime, int]:
    return (
        observation.state in TERMINAL_STATES,
        observation.at,
        _LIFECYCLE_RANK.get(observation.state, -1),
    )


def prevails(current: StateObservation | None, incoming: StateObservation) -> bool:
    """True when `incoming` should replace the projected `current` state."""
    return current is None or precedence(incoming) > precedence(current)


def converge(observations: list[StateObservation]) -> StateObservation | None:
    """The observation an order's projection ends with, whatever the arrival order."""
    result: StateObservation | None = None
    for observation in observations:
        if prevails(result, observation):
            result = observation
    return result
