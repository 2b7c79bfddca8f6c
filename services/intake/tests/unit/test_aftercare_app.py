# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""The communication log, follow-ups and trouble cases as use cases, on the in-memory unit of
work: what commits with a milestone or a completion, and what a clerk's request does. The
clock is moved, never waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline.events.v1 import order_events_pb2
from orderline_catalogue import load_catalogue
from orderline_devtools.fakes import InMemoryStore
from orderline_intake.app.aftercare import AftercareApp
from orderline_intake.app.orders import OrderApp
from orderline_intake.domain.communication import Channel, Direction, Notification
from orderline_intake.domain.followup import CaseState, Outcome
from orderline_intake.domain.order import Order
from orderline_intake.domain.states import OrderState
from orderline_runtime.errors import FailedPrecondition, InvalidArgument, NotFound

from .test_order_app import InMemoryOrders, new_order


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, by: timedelta) -> None:
        self.now += by


Store = InMemoryStore[InMemoryOrders]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def store() -> Store:
    return InMemoryStore(InMemoryOrders(), producer="intake")


@pytest.fixture
def orders(store: Store, clock: MovableClock) -> OrderApp:
    return OrderApp(store.uow, load_catalogue(), clock)


@pytest.fixture
def aftercare(store: Store, clock: MovableClock) -> AftercareApp:
    return AftercareApp(store.uow, clock)


async def completed(orders: OrderApp, store: Store, request_id: str = "req-1") -> Order:
    order, _ = await orders.create(new_order(request_id), actor="clerk-li")
    async with store.uow() as uow:
        await orders.reach_milestone(uow, order.id, "service_activated")
    async with store.uow() as uow:
        done = await orders.reach_milestone(
            uow, order.id, "customer_notified", Notification("sms", "DLV-1")
        )
    assert done.state is OrderState.COMPLETED
    return done


async def test_completion_schedules_the_visits_in_its_own_commit_with_one_insert(
    orders: OrderApp, store: Store, clock: MovableClock
) -> None:
    done = await completed(orders, store)
    visits = sorted(store.repos.visits.values(), key=lambda f: f.day)
    assert [f.day for f in visits] == [7, 30]  # broadband_install's follow-up days
    assert [f.due_at for f in visits] == [clock.now + timedelta(days=d) for d in (7, 30)]
    assert {f.order_id for f in visits} == {done.id}
    assert store.repos.follow_up_inserts == 1
    # The completion's commit carried the log entry and the visits; no extra event.
    assert store.event_types[-2:] == ["order.state_changed", "order.completed"]


async def test_the_notification_is_logged_with_its_milestone_once(
    orders: OrderApp, store: Store, aftercare: AftercareApp
) -> None:
    done = await completed(orders, store)
    async with store.uow() as uow:  # provisioning sends the milestone again
        await orders.reach_milestone(
            uow, done.id, "customer_notified", Notification("voice", "DLV-2")
        )
    [entry] = await aftercare.communications(done.id, limit=10, after=None)
    assert (entry.channel, entry.direction, entry.actor, entry.delivery_id) == (
        Channel.SMS,
        Direction.OUTBOUND,
        "provisioning",
        "DLV-1",
    )
    assert "+86" not in entry.text and "13800138000" not in entry.text


async def test_the_log_is_per_order_oldest_first_in_pages_with_numbers_masked(
    orders: OrderApp, store: Store, aftercare: AftercareApp, clock: MovableClock
) -> None:
    order, _ = await orders.create(new_order(), actor="clerk-li")
    other, _ = await orders.create(new_order("req-2", plan="fiber-1000m"), actor="clerk-li")
    now = clock.now
    await aftercare.add_communication(
        order.id, Channel.CALL, Direction.INBOUND, "客户来电，回拨13800138000", "clerk-li"
    )
    await aftercare.add_communication(
        order.id,
        Channel.NOTE,
        Direction.INBOUND,
        "came to the counter",
        "clerk-li",
        now - timedelta(hours=2),
    )
    await aftercare.add_communication(
        other.id, Channel.SMS, Direction.OUTBOUND, "other order", "clerk-li"
    )
    first = await aftercare.communications(order.id, limit=1, after=None)
    assert [c.text for c in first] == ["came to the counter"]  # backdated: oldest
    rest = await aftercare.communications(order.id, limit=5, after=(first[0].at, first[0].id))
    assert [c.text for c in rest] == ["客户来电，回拨138****8000"]
    assert rest[0].actor == "clerk-li" and rest[0].at == now


async def test_a_bad_log_entry_names_every_bad_field_and_an_unknown_order_is_not_found(
    orders: OrderApp, aftercare: AftercareApp, clock: MovableClock
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await aftercare.add_communication(
            "O-1", None, None, "x" * 501, "clerk-li", clock.now + timedelta(minutes=5)
        )
    assert {v.field for v in refused.value.violations} == {"channel", "direction", "text", "at"}
    with pytest.raises(NotFound):
        await aftercare.add_communication(
            "O-NOPE", Channel.NOTE, Direction.INBOUND, "hello", "clerk-li"
        )
    with pytest.raises(NotFound):
        await aftercare.communications("O-NOPE", limit=5, after=None)


async def test_overdue_follows_the_clock_and_recording_takes_a_visit_off_the_list(
    orders: OrderApp, store: Store, aftercare: AftercareApp, clock: MovableClock
) -> None:
    done = await completed(orders, store)
    overdue, _ = await aftercare.follow_ups(order_id=None, overdue=True, limit=10, after=None)
    assert overdue == []
    clock.move(timedelta(days=8))
    overdue, now = await aftercare.follow_ups(order_id=None, overdue=True, limit=10, after=None)
    assert [f.day for f in overdue] == [7] and overdue[0].overdue(now)
    every, _ = await aftercare.follow_ups(order_id=done.id, overdue=False, limit=10, after=None)
    assert [f.day for f in every] == [7, 30]

    recorded, case = await aftercare.record_follow_up(
        overdue[0].id, Outcome.SATISFIED, "happy", "clerk-li"
    )
    assert case is None and recorded.outcome is Outcome.SATISFIED
    assert (await aftercare.follow_ups(order_id=None, overdue=True, limit=10, after=None))[0] == []
    [event] = store.payloads(order_events_pb2.FollowUpRecorded)
    assert (event.order_id, event.day, event.recorded_by) == (done.id, 7, "clerk-li")
    assert "happy" not in str(event)  # the note stays with intake

    with pytest.raises(FailedPrecondition) as twice:
        await aftercare.record_follow_up(overdue[0].id, Outcome.NOT_REACHED, "", "clerk-wang")
    assert twice.value.reason == "FOLLOW_UP_RECORDED"


async def test_a_reported_problem_opens_a_case_that_is_listed_and_closed_once(
    orders: OrderApp, store: Store, aftercare: AftercareApp, clock: MovableClock
) -> None:
    done = await completed(orders, store)
    visit = min(store.repos.visits.values(), key=lambda f: f.day)
    clock.move(timedelta(days=7))
    recorded, case = await aftercare.record_follow_up(
        visit.id,
        Outcome.PROBLEM_REPORTED,
        "picture freezes, call 13800138000",
        "clerk-li",
        device_problem=True,
    )
    assert case is not None and recorded.case_id == case.id
    assert (case.order_id, case.state, case.device_problem) == (done.id, CaseState.OPEN, True)
    assert "138****8000" in case.description
    [opened] = store.payloads(order_events_pb2.CaseOpened)
    assert (opened.case_id, opened.order_id, opened.device_problem) == (case.id, done.id, True)
    # The order's device, for device-monitor's maintenance ticket.
    assert opened.device_id == done.device_id and opened.device_id

    [listed] = await aftercare.cases(order_id=done.id, state=CaseState.OPEN, limit=5, after=None)
    assert listed.id == case.id
    closed = await aftercare.close_case(case.id, "firmware updated", "maint-1")
    assert closed.state is CaseState.CLOSED and closed.resolution == "firmware updated"
    assert await aftercare.cases(order_id=None, state=CaseState.OPEN, limit=5, after=None) == []
    assert store.payloads(order_events_pb2.CaseClosed)[0].business_type == "broadband_install"
    with pytest.raises(FailedPrecondition):
        await aftercare.close_case(case.id, "again", "maint-1")
    with pytest.raises(NotFound):
        await aftercare.close_case("C-NOPE", "x", "maint-1")


async def test_a_bad_follow_up_record_names_every_bad_field(aftercare: AftercareApp) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await aftercare.record_follow_up("F-1", None, "", "clerk-li", device_problem=True)
    assert {v.field for v in refused.value.violations} == {"outcome", "device_problem"}
    with pytest.raises(InvalidArgument) as no_note:
        await aftercare.record_follow_up("F-1", Outcome.PROBLEM_REPORTED, " ", "clerk-li")
    assert [v.field for v in no_note.value.violations] == ["note"]
    with pytest.raises(NotFound):
        await aftercare.record_follow_up("F-NOPE", Outcome.SATISFIED, "", "clerk-li")
