"""Intake's use cases (OrderApp) on an in-memory unit of work: what a clerk's request and the
downstream events do to an order, and which events commit with each change. No I/O."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderline.events.v1 import order_events_pb2
from orderline_catalogue import load_catalogue
from orderline_devtools.fakes import InMemoryStore
from orderline_intake.app.orders import AUTO_REVIEWER, OrderApp
from orderline_intake.app.watch import QUEUE_LIMIT, OrderFeed, Subscription
from orderline_intake.domain.communication import Communication
from orderline_intake.domain.customer_hash import CustomerHashes
from orderline_intake.domain.followup import CaseState, FollowUp, TroubleCase
from orderline_intake.domain.order import Customer, Document, NewOrder, Order, request_fingerprint
from orderline_intake.domain.states import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    OrderState,
    Trigger,
)
from orderline_runtime.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)


class InMemoryOrders:
    """What the SQL repository promises: request ids unique, orders returned as copies."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.saves = 0
        self.log: list[Communication] = []
        self.visits: dict[str, FollowUp] = {}
        self.troubles: dict[str, TroubleCase] = {}
        # Statements the completion and notification paths issue (issue #8 counts them).
        self.follow_up_inserts = 0
        # Whether each load for update asked for the customer's personal data opened now.
        self.opened_for_update: list[bool] = []

    async def business_type_of(self, order_id: str) -> str | None:
        order = self.orders.get(order_id)
        return order.business_type if order else None

    async def device_of(self, order_id: str) -> str | None:
        order = self.orders.get(order_id)
        return order.device_id if order else None

    async def add_communication(self, entry: Communication) -> None:
        assert entry.order_id in self.orders  # the foreign key
        self.log.append(entry)

    async def communications(
        self, order_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Communication]:
        found = sorted((c for c in self.log if c.order_id == order_id), key=lambda c: (c.at, c.id))
        if after is not None:
            found = [c for c in found if (c.at, c.id) > after]
        return found[:limit]

    async def add_follow_ups(self, scheduled: Sequence[FollowUp]) -> None:
        if scheduled:
            self.follow_up_inserts += 1
        for f in scheduled:
            assert f.id not in self.visits
            self.visits[f.id] = f

    async def follow_up(self, follow_up_id: str, *, for_update: bool = False) -> FollowUp | None:
        return self.visits.get(follow_up_id)

    async def save_follow_up(self, follow_up: FollowUp) -> None:
        self.visits[follow_up.id] = follow_up

    async def follow_ups(
        self,
        *,
        order_id: str | None,
        overdue_at: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[FollowUp]:
        found = sorted(self.visits.values(), key=lambda f: (f.due_at, f.id))
        return [
            f
            for f in found
            if (order_id is None or f.order_id == order_id)
            and (overdue_at is None or f.overdue(overdue_at))
            and (after is None or (f.due_at, f.id) > after)
        ][:limit]

    async def add_case(self, case: TroubleCase) -> None:
        self.troubles[case.id] = case

    async def case(self, case_id: str, *, for_update: bool = False) -> TroubleCase | None:
        return self.troubles.get(case_id)

    async def save_case(self, case: TroubleCase) -> None:
        self.troubles[case.id] = case

    async def cases(
        self,
        *,
        order_id: str | None,
        state: CaseState | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[TroubleCase]:
        found = sorted(self.troubles.values(), key=lambda c: (c.opened_at, c.id))
        return [
            c
            for c in found
            if (order_id is None or c.order_id == order_id)
            and (state is None or c.state is state)
            and (after is None or (c.opened_at, c.id) > after)
        ][:limit]

    async def get(
        self, order_id: str, *, for_update: bool = False, open_pii: bool = True
    ) -> Order | None:
        if for_update:
            self.opened_for_update.append(open_pii)
        order = self.orders.get(order_id)
        return copy.deepcopy(order) if order else None

    async def by_request_id(self, client_request_id: str) -> Order | None:
        for order in self.orders.values():
            if order.client_request_id == client_request_id:
                return copy.deepcopy(order)
        return None

    async def list_orders(
        self,
        *,
        limit: int,
        after_id: str | None,
        state: str | None,
        business_type: str | None,
        created: tuple[datetime | None, datetime | None] = (None, None),
        customer: tuple[str, str] | None = None,
    ) -> list[Order]:
        found = sorted(self.orders.values(), key=lambda o: o.id, reverse=True)
        since, before = created
        found = [
            o
            for o in found
            if (after_id is None or o.id < after_id)
            and (
                customer is None
                or (
                    o.customer_hashes is not None
                    and (
                        o.customer_hashes.phone == customer[0]
                        or o.customer_hashes.id_number == customer[1]
                    )
                )
            )
            and (state is None or o.state.value == state)
            and (business_type is None or o.business_type == business_type)
            and (since is None or o.created_at >= since)
            and (before is None or o.created_at < before)
        ]
        return copy.deepcopy(found[:limit])

    async def versions_since(
        self, since: datetime, order_ids: Sequence[str] | None
    ) -> list[tuple[str, int]]:
        return [
            (o.id, o.version)
            for o in self.orders.values()
            if o.updated_at and o.updated_at >= since and (not order_ids or o.id in order_ids)
        ]

    async def many(self, order_ids: Sequence[str]) -> list[Order]:
        return [copy.deepcopy(self.orders[i]) for i in order_ids if i in self.orders]

    async def open_duplicates(self, order: Order) -> list[str]:
        c = order.customer
        if not c.id_number or not c.address:
            return []
        return [
            o.id
            for o in self.orders.values()
            if o.id != order.id
            and o.state not in TERMINAL
            and (o.customer.id_number, o.customer.address, o.business_type)
            == (c.id_number, c.address, order.business_type)
        ]

    async def due_for_jeopardy(self, now: datetime, limit: int) -> list[str]:
        due = [
            (check, o.id)
            for o in self.orders.values()
            if (check := o.next_due_check) is not None and check < now
        ]
        return [i for _, i in sorted(due)[:limit]]

    async def jeopardy_list(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        listed = sorted(
            (
                (status[1], o.id, o)
                for o in self.orders.values()
                if (status := o.jeopardy_status) is not None
                and (business_type is None or o.business_type == business_type)
            ),
            key=lambda t: (t[0], t[1]),
        )
        return copy.deepcopy(
            [o for due, i, o in listed if after is None or (due, i) > after][:limit]
        )

    async def unhashed(self, key_id: str, limit: int) -> list[tuple[str, str, str, str]]:
        return [
            (o.id, o.customer.phone, o.customer.id_number, o.customer_hashes.key_id)
            if o.customer_hashes
            else (o.id, o.customer.phone, o.customer.id_number, "")
            for o in sorted(self.orders.values(), key=lambda o: o.id)
            if o.customer_hashes is None or o.customer_hashes.key_id != key_id
        ][:limit]

    async def set_hashes(self, order_id: str, hashes: CustomerHashes, was_key_id: str) -> bool:
        order = self.orders[order_id]
        if (order.customer_hashes.key_id if order.customer_hashes else "") != was_key_id:
            return False
        order.customer_hashes = hashes
        return True

    async def review_queue(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        queued = sorted(
            (
                o
                for o in self.orders.values()
                if o.state is OrderState.ACKNOWLEDGED
                and (business_type is None or o.business_type == business_type)
            ),
            key=lambda o: (o.review_queued_at or o.created_at, o.id),
        )
        if after is not None:
            queued = [o for o in queued if (o.review_queued_at or o.created_at, o.id) > after]
        return copy.deepcopy(queued[:limit])

    async def add(self, order: Order) -> None:
        if any(o.client_request_id == order.client_request_id for o in self.orders.values()):
            raise Conflict(f"client_request_id {order.client_request_id!r} exists")
        self._store(order)

    async def save(self, order: Order) -> None:
        # Optimistic concurrency, as the SQL repository: only onto the version loaded.
        stored = self.orders.get(order.id)
        if stored is None or stored.version != order.version:
            raise Conflict(f"order {order.id} was changed by another writer", reason="STALE_ETAG")
        order.version += 1
        self.saves += 1
        self._store(order)

    def _store(self, order: Order) -> None:
        order.new_history.clear()
        order.new_milestones.clear()
        self.orders[order.id] = copy.deepcopy(order)


class RacingOrders(InMemoryOrders):
    """Another clerk's retry with the same request id commits between our read and our write."""

    def __init__(self, race: Callable[[], bool], winner: Order) -> None:
        super().__init__()
        self.winner = winner
        # A function, so that the unit of work's copy of these repositories still reaches the
        # committed ones and the race happens once.
        self.race = race

    async def by_request_id(self, client_request_id: str) -> Order | None:
        if self.race():
            self._store(copy.deepcopy(self.winner))  # what the unique key will clash with
            return None
        return await super().by_request_id(client_request_id)


def recorded_by_another_clerk(new: NewOrder) -> Order:
    return Order.record("O-WINNER", new, "clerk-wang", datetime(2026, 12, 6, 8, 0, tzinfo=UTC))


class SteppingClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def new_order(request_id: str = "req-1", **overrides: object) -> NewOrder:
    fields: dict[str, object] = {
        "client_request_id": request_id,
        "business_type": "broadband_install",
        "customer": Customer(
            name="张伟",
            phone="+8613800138000",
            id_number="11010519491231002X",
            address="北京市朝阳区建国路88号",
            locale="zh-CN",
        ),
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
        "documents": (Document("identity_copy", "ab" * 32, 180_000),),
        **overrides,
    }
    return NewOrder(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store() -> InMemoryStore[InMemoryOrders]:
    return InMemoryStore(InMemoryOrders(), producer="intake")


@pytest.fixture
def app(store: InMemoryStore[InMemoryOrders]) -> OrderApp:
    return OrderApp(store.uow, load_catalogue(), SteppingClock())


async def test_a_complete_order_is_recorded_approved_and_announced_in_one_commit(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, created = await app.create(new_order(), actor="clerk-li")

    assert created
    assert order.state is OrderState.IN_PROGRESS
    assert "review_approved" in order.milestones
    assert store.commits == 1
    assert store.event_types == ["order.created", "order.state_changed", "order.approved"]
    [approved] = store.payloads(order_events_pb2.OrderApproved)
    assert (approved.order_id, approved.approved_by, approved.device_id) == (
        order.id,
        AUTO_REVIEWER,
        "CPE-0001",
    )
    # Every event names the order in its envelope too.
    assert {e.order_id for e in store.published} == {order.id}
    stored = store.repos.orders[order.id]
    assert stored.state is OrderState.IN_PROGRESS and stored.created_by == "clerk-li"


async def test_a_retry_with_the_same_request_id_returns_the_first_order_and_emits_nothing(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    first, _ = await app.create(new_order("req-7"), actor="clerk-li")
    again, created = await app.create(new_order("req-7"), actor="clerk-wang")

    assert not created
    assert again.id == first.id
    assert len(store.repos.orders) == 1
    assert store.event_types.count("order.created") == 1


async def test_a_request_id_reused_with_other_details_is_refused_and_changes_nothing(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    first, _ = await app.create(new_order("req-7"), actor="clerk-li")
    commits = store.commits
    with pytest.raises(AlreadyExists) as refused:
        await app.create(new_order("req-7", plan="fiber-1000m"), actor="clerk-wang")

    assert refused.value.reason == "REQUEST_ID_REUSED"
    assert first.id in refused.value.message and "请求编号" in refused.value.message
    assert store.commits == commits and store.repos.orders[first.id].plan == "fiber-500m"
    assert store.event_types.count("order.created") == 1


def test_a_retry_sent_the_older_way_has_the_same_fingerprint() -> None:
    structured = new_order("req-8")
    legacy = replace(structured, id_number_path="customer.id_number")
    assert request_fingerprint(legacy) == request_fingerprint(structured)
    assert request_fingerprint(replace(structured, device_id="CPE-0002")) != (
        request_fingerprint(structured)
    )


@pytest.mark.parametrize("same", [True, False])
async def test_a_concurrent_create_that_wins_the_race_answers_a_retry_and_refuses_another(
    same: bool,
) -> None:
    store: InMemoryStore[InMemoryOrders] = InMemoryStore(InMemoryOrders(), producer="intake")
    raced = False

    def race() -> bool:
        nonlocal raced
        if raced:
            return False
        raced = True
        store.repos._store(copy.deepcopy(winner))  # the other transaction commits
        return True

    ours = new_order("req-9")
    winner = recorded_by_another_clerk(ours if same else new_order("req-9", plan="fiber-1000m"))
    store.repos = RacingOrders(race, winner)
    app = OrderApp(store.uow, load_catalogue(), SteppingClock())

    if same:
        order, created = await app.create(ours, actor="clerk-li")
        assert not created and order.id == "O-WINNER"
    else:
        with pytest.raises(AlreadyExists):
            await app.create(ours, actor="clerk-li")
    # Our half-done transaction left nothing behind: no events, no second order.
    assert store.published == []
    assert list(store.repos.orders) == ["O-WINNER"]


async def test_an_invalid_order_is_refused_before_anything_is_written(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    bad = new_order(business_type="teleportation", device_id="cpe 1")
    with pytest.raises(InvalidArgument) as refused:
        await app.create(bad, actor="clerk-li")

    assert {v.field for v in refused.value.violations} >= {"business_type", "device_id"}
    assert store.commits == 0 and store.repos.orders == {}


async def test_the_order_completes_when_the_service_is_active_and_the_customer_notified(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    for milestone in ("prechecks_passed", "device_configured", "tests_passed"):
        async with store.uow() as uow:
            await app.reach_milestone(uow, order.id, milestone)
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "service_activated")
    assert store.repos.orders[order.id].state is OrderState.IN_PROGRESS
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "voucher_issued", voucher_id="AV-ABCDEFGHIJKL")
    async with store.uow() as uow:
        done = await app.reach_milestone(uow, order.id, "customer_notified")

    assert done.state is OrderState.COMPLETED
    [completed] = store.payloads(order_events_pb2.OrderCompleted)
    assert completed.voucher_id == "AV-ABCDEFGHIJKL"
    assert [m.name for m in completed.milestones][-1] == "customer_notified"
    # The history the dossier will seal: recorded, approved, completed.
    assert [h.reason_code for h in completed.history] == [
        "RECORDED",
        "AUTO_APPROVED_COMPLETE",
        "SERVICE_ACTIVE_CUSTOMER_NOTIFIED",
    ]


async def test_a_milestone_seen_twice_changes_nothing_the_second_time(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "prechecks_passed")
    saves, events = store.repos.saves, len(store.published)
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "prechecks_passed")

    assert (store.repos.saves, len(store.published)) == (saves, events)


async def test_a_hold_names_the_alarm_and_an_illegal_transition_leaves_the_order_as_it_was(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL",
            alarm_id="AL-1",
        )  # fmt: skip
    held = store.repos.orders[order.id]
    assert (held.state, held.alarm_id, held.state_reason) == (
        OrderState.HELD,
        "AL-1",
        "DEVICE_ABNORMAL",
    )
    events = len(store.published)

    with pytest.raises(InvalidTransition):
        async with store.uow() as uow:
            await app.transition(
                uow, order.id, Trigger.COMPLETE, actor="provisioning", reason_code="X"
            )
    assert store.repos.orders[order.id].state is OrderState.HELD
    assert len(store.published) == events


async def test_events_about_an_unknown_order_are_not_found(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    with pytest.raises(NotFound):
        async with store.uow() as uow:
            await app.reach_milestone(uow, "O-NOPE", "tests_passed")
    with pytest.raises(NotFound):
        await app.get("O-NOPE")


async def test_queries_read_what_commands_committed(app: OrderApp) -> None:
    first, _ = await app.create(new_order("req-a"), actor="clerk-li")
    second, _ = await app.create(new_order("req-b", business_type="plan_change"), actor="c")

    assert (await app.get(first.id)).id == first.id
    listed = await app.list_orders(limit=10, after_id=None, state=None, business_type=None)
    assert {o.id for o in listed} == {first.id, second.id}
    only = await app.list_orders(
        limit=10, after_id=None, state="inProgress", business_type="plan_change"
    )
    assert [o.id for o in only] == [second.id]


# --- review, amendment, hold and resume ----------------------------------------------------------

PASSPORT = Customer(
    name="John Smith",
    phone="+8613800138000",
    id_number="K12345678",
    address="北京市朝阳区建国路88号",
    locale="en",
    id_type="passport",
    passport_country="GBR",
)


async def test_an_order_the_checks_cannot_decide_waits_in_the_queue_and_emits_why(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(customer=PASSPORT), actor="clerk-li")

    assert order.state is OrderState.ACKNOWLEDGED
    assert [r.code for r in order.review_reasons] == ["PASSPORT_IDENTITY"]
    assert store.event_types == ["order.created", "order.review_queued"]
    queue = await app.review_queue(limit=10, after=None, business_type=None)
    assert [o.id for o in queue] == [order.id]


async def test_review_is_four_eyes_and_checks_the_etag(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(customer=PASSPORT), actor="lead-chen")
    with pytest.raises(PermissionDenied) as denied:
        await app.approve(order.id, "", actor="lead-chen")
    assert denied.value.reason == "FOUR_EYES"
    with pytest.raises(Conflict):
        await app.approve(order.id, "stale", actor="reviewer-li")
    approved = await app.approve(order.id, order.etag, actor="reviewer-li")

    assert approved.state is OrderState.IN_PROGRESS
    assert store.event_types[-2:] == ["order.state_changed", "order.approved"]
    with pytest.raises(FailedPrecondition) as twice:
        await app.approve(order.id, "", actor="reviewer-li")
    assert "inProgress" in twice.value.message and "approve" in twice.value.message


async def test_a_device_hold_is_resumed_by_provisioning_not_by_a_person(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL"
        )
    with pytest.raises(FailedPrecondition) as refused:
        await app.resume(order.id, "", "ISSUE_RESOLVED", actor="engineer-zhao")
    assert refused.value.reason == "HELD_FOR_DEVICE"
    async with store.uow() as uow:
        resumed = await app.reach_milestone(uow, order.id, "prechecks_passed")
    assert resumed.state is OrderState.IN_PROGRESS
    assert resumed.history[-1].reason_code == "PROVISIONING_RESUMED"


async def test_only_commands_open_the_customers_data_when_they_load_an_order(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    # Event handlers and the sweep never read it (issue #8: opening it was a tenth of a
    # load); a command answers with the order, so a value that cannot be opened fails it.
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "prechecks_passed")
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL"
        )
    app.clock = lambda: datetime(2027, 6, 1, tzinfo=UTC)  # every milestone late
    assert await app.sweep_jeopardy() > 0
    assert store.repos.opened_for_update == [False, False, False]
    await app.hold(order.id, "", "CUSTOMER_REQUEST", actor="engineer-zhao")
    assert store.repos.opened_for_update[-1] is True


async def test_a_persons_hold_and_resume_tell_provisioning_in_their_transaction(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    held = await app.hold(order.id, order.etag, "CUSTOMER_REQUEST", actor="engineer-zhao")
    assert store.event_types[-2:] == ["order.state_changed", "order.hold_requested"]
    (hold,) = store.payloads(order_events_pb2.OrderHoldRequested)
    assert (hold.order_id, hold.device_id, hold.business_type) == (
        order.id,
        order.device_id,
        order.business_type,
    )
    assert (hold.reason_code, hold.held_by) == ("CUSTOMER_REQUEST", "engineer-zhao")
    # The version the hold wrote: it orders the hold and the resume downstream.
    assert hold.order_version == held.version

    # One person's hold at a time.
    with pytest.raises(FailedPrecondition) as again:
        await app.hold(order.id, "", "OTHER", actor="clerk-li")
    assert again.value.reason == "ALREADY_HELD" and "engineer-zhao" in again.value.message

    resumed = await app.resume(order.id, "", "CUSTOMER_READY", actor="clerk-li")
    assert store.event_types[-2:] == ["order.state_changed", "order.resume_requested"]
    (back,) = store.payloads(order_events_pb2.OrderResumeRequested)
    assert (back.reason_code, back.resumed_by) == ("CUSTOMER_READY", "clerk-li")
    assert back.order_version == resumed.version > hold.order_version


async def test_provisioning_progress_leaves_an_order_a_person_holds_held(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    await app.hold(order.id, "", "SITE_NOT_READY", actor="engineer-zhao")
    # A step in flight when the hold arrived completes; the job then stops, held again for
    # its device meanwhile: the order stays held by the person.
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "device_configured")
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL"
        )
    still = store.repos.orders[order.id]
    assert (still.state, still.state_reason, still.history[-1].actor) == (
        OrderState.HELD,
        "SITE_NOT_READY",
        "engineer-zhao",
    )
    assert "device_configured" in still.milestones
    # The person resumes it (their hold, not the device's).
    resumed = await app.resume(order.id, "", "SITE_READY", actor="engineer-zhao")
    assert resumed.state is OrderState.IN_PROGRESS


async def test_provisioning_holds_tell_provisioning_nothing(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL"
        )
    async with store.uow() as uow:
        await app.reach_milestone(uow, order.id, "prechecks_passed")
    assert "order.hold_requested" not in store.event_types
    assert "order.resume_requested" not in store.event_types


async def test_a_person_holds_an_order_held_for_its_device_and_only_they_resume_it(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    order, _ = await app.create(new_order(), actor="clerk-li")
    async with store.uow() as uow:
        await app.transition(
            uow, order.id, Trigger.HOLD, actor="provisioning", reason_code="DEVICE_ABNORMAL",
            alarm_id="AL-1",
        )  # fmt: skip
    # The customer asks to wait while the device is faulty: the person's hold is added, so
    # that the job does not go on by itself when the device recovers.
    held = await app.hold(order.id, "", "CUSTOMER_REQUEST", actor="clerk-li")
    assert (held.state, held.state_reason, held.history[-1].from_state) == (
        OrderState.HELD,
        "CUSTOMER_REQUEST",
        OrderState.HELD,
    )
    assert not held.held_for_device
    assert store.event_types[-1] == "order.hold_requested"
    # Provisioning's progress does not resume it; the person does.
    async with store.uow() as uow:
        after = await app.reach_milestone(uow, order.id, "tests_passed")
    assert after.state is OrderState.HELD
    resumed = await app.resume(order.id, "", "CUSTOMER_READY", actor="clerk-li")
    assert resumed.state is OrderState.IN_PROGRESS
    assert store.event_types[-1] == "order.resume_requested"


# Commands a property run picks from: (name, how to call it on the app).
Command = tuple[str, str]
COMMANDS: list[Command] = [
    ("approve", "reviewer-li"),
    ("approve", "clerk-li"),  # the creator: four-eyes
    ("reject", "reviewer-li"),
    ("request_information", "reviewer-li"),
    ("amend", "clerk-li"),
    ("amend_bad_mask", "clerk-li"),
    ("hold", "engineer-zhao"),
    ("resume", "engineer-zhao"),
    ("device_hold", "provisioning"),
    ("fail", "provisioning"),
    ("milestone", "provisioning"),
    ("stale_approve", "reviewer-li"),
]
STEPS = [
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
]
ROWS = {(src, dst) for (src, _), dst in TRANSITIONS.items()}


async def _run(app: OrderApp, store: InMemoryStore[InMemoryOrders], order_id: str, cmd: Command,
               step: int) -> None:  # fmt: skip
    name, actor = cmd
    match name:
        case "approve":
            await app.approve(order_id, "", actor=actor)
        case "stale_approve":
            await app.approve(order_id, "not-the-etag", actor=actor)
        case "reject":
            await app.reject(order_id, "", ["OTHER"], actor=actor)
        case "request_information":
            await app.request_information(order_id, "", ["documents"], "", actor=actor)
        case "amend" | "amend_bad_mask":
            current = await app.get(order_id)
            patch = new_order(plan=f"plan-{step}")
            paths = ["plan"] if name == "amend" else ["business_type"]
            await app.amend(order_id, current.etag, patch, paths, actor=actor)
        case "hold":
            await app.hold(order_id, "", "CUSTOMER_REQUEST", actor=actor)
        case "resume":
            await app.resume(order_id, "", "CUSTOMER_READY", actor=actor)
        case "device_hold" | "fail":
            trigger = Trigger.HOLD if name == "device_hold" else Trigger.FAIL
            async with store.uow() as uow:
                await app.transition(uow, order_id, trigger, actor=actor, reason_code="X")
        case "milestone":
            async with store.uow() as uow:
                await app.reach_milestone(uow, order_id, STEPS[step % len(STEPS)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from(["complete", "passport", "no_documents"]),
    commands=st.lists(st.sampled_from(COMMANDS), max_size=14),
)
def test_no_sequence_of_commands_leaves_the_table_or_loses_history(
    start: str, commands: list[Command]
) -> None:
    async def scenario() -> None:
        store: InMemoryStore[InMemoryOrders] = InMemoryStore(InMemoryOrders(), producer="intake")
        app = OrderApp(store.uow, load_catalogue(), SteppingClock())
        first = {
            "complete": new_order(),
            "passport": new_order(customer=PASSPORT),
            "no_documents": new_order(documents=()),
        }[start]
        order, _ = await app.create(first, actor="clerk-li")
        before = copy.deepcopy(store.repos.orders[order.id])
        for step, cmd in enumerate(commands):
            try:
                await _run(app, store, order.id, cmd, step)
            except (
                InvalidTransition,
                FailedPrecondition,
                PermissionDenied,
                Conflict,
                InvalidArgument,
            ):
                # Refused: nothing changed.
                assert store.repos.orders[order.id] == before
            after = store.repos.orders[order.id]
            assert after.state in set(OrderState)
            # History only grows, and every entry is a row of the table.
            assert after.history[: len(before.history)] == before.history
            assert len(after.history) >= len(before.history)
            for a, b in itertools.pairwise(after.history):
                assert a.to_state is b.from_state
                assert (b.from_state, b.to_state) in ROWS
                assert b.actor and b.reason_code and b.at >= a.at
            assert after.history[-1].to_state is after.state
            before = copy.deepcopy(after)

    asyncio.run(scenario())


# --- watches ---------------------------------------------------------------------------------


def drain(subscription: Subscription) -> list[tuple[str, int, tuple[str, ...]]]:
    seen = []
    while not subscription.queue.empty():
        order = subscription.queue.get_nowait()
        seen.append((order.id, order.version, tuple(order.milestones)))
    return seen


async def test_a_watch_is_handed_every_committed_change_in_order_and_nothing_rolled_back(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    with app.feed.subscribe() as everything:
        order, _ = await app.create(new_order(), actor="clerk-li")
        with app.feed.subscribe([order.id]) as one:
            other, _ = await app.create(new_order("req-other"), actor="clerk-li")
            for milestone in ("prechecks_passed", "device_configured"):
                async with store.uow() as uow:
                    await app.reach_milestone(uow, order.id, milestone)
            with pytest.raises(RuntimeError):
                async with store.uow() as uow:
                    await app.reach_milestone(uow, order.id, "tests_passed")
                    raise RuntimeError("the handler failed after saving")

    after_approval = ("review_approved",)
    assert drain(one) == [
        (order.id, 1, (*after_approval, "prechecks_passed")),
        (order.id, 2, (*after_approval, "prechecks_passed", "device_configured")),
    ]
    assert [(i, v) for i, v, _ in drain(everything)] == [
        (order.id, 0),
        (other.id, 0),
        (order.id, 1),
        (order.id, 2),
    ]
    assert not app.feed._subscriptions


async def test_a_catch_up_loads_only_orders_changed_beyond_what_the_watch_has_seen(
    app: OrderApp, store: InMemoryStore[InMemoryOrders]
) -> None:
    start = datetime(2000, 1, 1, tzinfo=UTC)
    first, _ = await app.create(new_order("req-a"), actor="clerk-li")
    second, _ = await app.create(new_order("req-b"), actor="clerk-li")
    async with store.uow() as uow:
        await app.reach_milestone(uow, second.id, "prechecks_passed")

    unseen = await app.unseen_since(start, (), {first.id: 0, second.id: 0})
    assert [(o.id, o.version) for o in unseen] == [(second.id, 1)]
    assert await app.unseen_since(start, (), {first.id: 0, second.id: 1}) == []
    only_first = await app.unseen_since(start, [first.id], {})
    assert [o.id for o in only_first] == [first.id]


def test_a_watch_that_falls_too_far_behind_is_dropped_to_a_catch_up() -> None:
    feed = OrderFeed()
    order = Order.__new__(Order)
    order.id = "O-1"
    with feed.subscribe() as behind:
        for _ in range(QUEUE_LIMIT + 1):
            feed.committed(order)
        assert behind.overflowed.is_set() and behind.queue.empty()
        feed.committed(order)
        assert behind.queue.empty()
        behind.caught_up()
        feed.committed(order)
        assert behind.queue.qsize() == 1 and not behind.overflowed.is_set()
