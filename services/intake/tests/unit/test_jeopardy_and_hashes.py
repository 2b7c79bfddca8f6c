"""SLA due times, the jeopardy sweep and the keyed customer hashes: pure domain functions, and
the use cases on the in-memory unit of work. The clock is moved, never waited for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from orderline.events.v1 import order_events_pb2
from orderline_catalogue import load_catalogue
from orderline_devtools.fakes import InMemoryStore
from orderline_intake.app.orders import OrderApp
from orderline_intake.domain import sla
from orderline_intake.domain.customer_hash import (
    CustomerHasher,
    normalised_id_number,
    normalised_phone,
)
from orderline_intake.domain.order import Customer, Document
from orderline_intake.domain.states import OrderState

from .test_order_app import InMemoryOrders, new_order

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
DUES = {"review_approved": T0 + 4 * H, "prechecks_passed": T0 + 8 * H}


class MovableClock:
    def __init__(self) -> None:
        self.now = T0

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
def app(store: Store, clock: MovableClock) -> OrderApp:
    return OrderApp(store.uow, load_catalogue(), clock)


# --- domain ---------------------------------------------------------------------------------


def test_due_times_are_creation_plus_the_sla() -> None:
    assert sla.due_times(T0, {"review_approved": 4 * H}) == {"review_approved": T0 + 4 * H}


def test_a_milestone_past_due_and_not_reached_is_raised_once_earliest_first() -> None:
    state = OrderState.ACKNOWLEDGED
    assert sla.past_due(state, DUES, {}, {}, T0 + 4 * H) == []  # due, not past due
    late = sla.past_due(state, DUES, {}, {}, T0 + 9 * H)
    assert late == ["review_approved", "prechecks_passed"]
    raised = dict.fromkeys(late, T0 + 9 * H)
    assert sla.past_due(state, DUES, {}, raised, T0 + 20 * H) == []
    assert sla.next_check(state, DUES, {}, raised) is None
    assert sla.in_jeopardy(state, DUES, {}, raised) == ("review_approved", T0 + 4 * H)
    # Reaching the late milestone ends the jeopardy for it; the raise is kept.
    reached = {"review_approved": T0 + 10 * H}
    assert sla.in_jeopardy(state, DUES, reached, raised) == ("prechecks_passed", T0 + 8 * H)


def test_a_reached_milestone_or_a_stopped_order_is_never_in_jeopardy() -> None:
    reached = {"review_approved": T0 + H}
    assert sla.past_due(OrderState.IN_PROGRESS, DUES, reached, {}, T0 + 5 * H) == []
    assert sla.next_check(OrderState.IN_PROGRESS, DUES, reached, {}) == T0 + 8 * H
    for stopped in sla.STOPPED:
        assert sla.past_due(stopped, DUES, {}, {}, T0 + 20 * H) == []
        assert sla.next_check(stopped, DUES, {}, {}) is None
        assert sla.in_jeopardy(stopped, DUES, {}, dict.fromkeys(DUES, T0)) is None


def test_numbers_are_normalised_before_they_are_hashed() -> None:
    assert normalised_phone("138 0013-8000") == "+8613800138000"
    assert normalised_phone("008613800138000") == "+8613800138000"
    assert normalised_phone("8613800138000") == "+8613800138000"
    assert normalised_phone("+44 20 7946 0958") == "+442079460958"
    assert normalised_id_number(" 11010519491231002x ") == "11010519491231002X"


def test_the_hash_is_keyed_and_a_phone_never_matches_an_identity_number() -> None:
    one = CustomerHasher(b"k" * 32, "k1")
    other = CustomerHasher(b"z" * 32, "k2")
    assert one.phone("13800138000") == one.phone("+86 138 0013 8000")
    assert one.phone("+8613800138000") != other.phone("+8613800138000")
    assert one.phone("123456789") != one.id_number("123456789")
    assert one.id_number("11010519491231002x") == one.id_number("11010519491231002X")
    assert "13800138000" not in one.phone("13800138000")
    assert one.of("", "").phone == ""
    with pytest.raises(ValueError, match="32 bytes"):
        CustomerHasher(b"short", "k1")


# --- use cases ------------------------------------------------------------------------------


async def test_an_order_keeps_its_due_times_from_the_catalogue(app: OrderApp) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    business = load_catalogue().get("broadband_install")
    assert business is not None
    assert order.milestone_dues == {m: T0 + d for m, d in business.sla.items()}
    assert order.jeopardy_status is None


async def test_the_sweep_raises_jeopardy_once_per_milestone_by_the_clock(
    app: OrderApp, store: Store, clock: MovableClock
) -> None:
    # Waits in the review queue (a passport: the checks cannot decide).
    passport = Customer(
        name="John Smith",
        phone="+447700900123",
        id_number="X1234567",
        address="上海市浦东新区世纪大道100号",
        locale="en",
        id_type="passport",
        passport_country="GBR",
    )
    order, _ = await app.create(new_order(customer=passport), actor="clerk-li")
    assert order.state is OrderState.ACKNOWLEDGED
    assert await app.sweep_jeopardy() == 0

    clock.move(5 * H)  # past review_approved (4h), before prechecks_passed (8h)
    assert await app.sweep_jeopardy() == 1
    assert await app.sweep_jeopardy() == 0  # never twice
    [raised] = store.payloads(order_events_pb2.JeopardyRaised)
    assert (raised.order_id, raised.milestone, raised.business_type) == (
        order.id,
        "review_approved",
        "broadband_install",
    )
    assert raised.due_at.ToDatetime(UTC) == T0 + 4 * H
    assert raised.raised_at.ToDatetime(UTC) == T0 + 5 * H
    stored = await app.get(order.id)
    assert stored.jeopardy_status == ("review_approved", T0 + 4 * H)
    [listed] = await app.jeopardy_list(limit=10, after=None, business_type=None)
    assert listed.id == order.id

    clock.move(5 * H)  # past prechecks_passed too
    assert await app.sweep_jeopardy() == 1
    assert [p.milestone for p in store.payloads(order_events_pb2.JeopardyRaised)] == [
        "review_approved",
        "prechecks_passed",
    ]


async def test_two_sweeps_at_once_raise_each_milestone_once(
    app: OrderApp, store: Store, clock: MovableClock
) -> None:
    order, _ = await app.create(new_order(documents=()), actor="clerk-li")  # pending
    assert order.state is OrderState.PENDING
    clock.move(9 * H)
    counts = await asyncio.gather(app.sweep_jeopardy(), app.sweep_jeopardy())
    assert sum(counts) == 2  # review_approved and prechecks_passed, once each
    assert len(store.payloads(order_events_pb2.JeopardyRaised)) == 2


async def test_orders_are_found_by_a_customer_number_in_any_spelling(app: OrderApp) -> None:
    first, _ = await app.create(new_order("r1"), actor="clerk-li")
    other = Customer(
        name="王芳",
        phone="+8613800138002",
        id_number="310115198001010016",
        address="上海市浦东新区世纪大道100号",
        locale="zh-CN",
    )
    await app.create(
        new_order("r2", customer=other, documents=(Document("identity_copy", "cd" * 32, 9),)),
        actor="clerk-li",
    )

    async def by(value: str) -> list[str]:
        found = await app.list_orders(
            limit=10,
            after_id=None,
            state=None,
            business_type=None,
            customer=app.customer_filter(value),
        )
        return [o.id for o in found]

    assert await by("138 0013 8000") == [first.id]
    assert await by("11010519491231002x") == [first.id]
    assert await by("+8613900000000") == []


async def test_orders_hashed_under_another_key_are_hashed_again(
    store: Store, clock: MovableClock
) -> None:
    old = OrderApp(store.uow, load_catalogue(), clock, hasher=CustomerHasher(b"o" * 32, "old"))
    order, _ = await old.create(new_order(), actor="clerk-li")
    new = OrderApp(store.uow, load_catalogue(), clock, hasher=CustomerHasher(b"n" * 32, "new"))
    assert await new.backfill_customer_hashes(batch=1) == 1
    assert await new.backfill_customer_hashes() == 0
    hashes = store.repos.orders[order.id].customer_hashes
    assert hashes is not None and hashes.key_id == "new"
    assert hashes.phone == new.hasher.phone("+8613800138000")
