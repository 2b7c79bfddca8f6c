"""Use cases of intake: record an order, review it, and follow it from downstream events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orderline.events.v1 import order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_intake.adapters.repository import OrderRepository
from orderline_intake.domain.catalogue import Catalogue
from orderline_intake.domain.order import NewOrder, Order, StateChange, validate_new_order
from orderline_intake.domain.states import OrderState, Trigger
from orderline_runtime.database import Database
from orderline_runtime.errors import NotFound
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.metrics import stage_duration
from orderline_runtime.order_states import TMF_NAMES
from orderline_runtime.telemetry import order_scope

AUTO_REVIEWER = "intake/auto-review"

# Domain states carry the TMF641 names, so the wire mapping is the shared one, inverted.
PROTO_TO_STATE: dict[order_pb2.OrderState.ValueType, OrderState] = {
    number: OrderState(name)  # type: ignore[misc]
    for number, name in TMF_NAMES.items()
}
STATE_TO_PROTO = {state: number for number, state in PROTO_TO_STATE.items()}


def utcnow() -> datetime:
    return datetime.now(UTC)


def milestone_messages(order: Order) -> list[order_pb2.Milestone]:
    result = []
    for name, at in sorted(order.milestones.items(), key=lambda kv: kv[1]):
        m = order_pb2.Milestone(name=name)
        m.reached_at.FromDatetime(at)
        result.append(m)
    return result


def history_messages(history: Sequence[StateChange]) -> list[order_pb2.StateChange]:
    result = []
    for c in history:
        msg = order_pb2.StateChange(
            from_state=STATE_TO_PROTO[c.from_state],
            to_state=STATE_TO_PROTO[c.to_state],
            actor=c.actor,
            reason_code=c.reason_code,
        )
        msg.at.FromDatetime(c.at)
        result.append(msg)
    return result


class OrderApp:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        catalogue: Catalogue,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.catalogue = catalogue
        self.clock = clock

    # --- commands -------------------------------------------------------------------------

    async def create(self, new: NewOrder, actor: str) -> tuple[Order, bool]:
        """Records the order; a complete one is approved at once. Idempotent on the request id."""
        validate_new_order(new, self.catalogue)
        try:
            async with self.db.transaction() as session:
                repo = OrderRepository(session)
                existing = await repo.by_request_id(new.client_request_id)
                if existing is not None:
                    return existing, False
                order = Order.record(new_id(), new, actor, self.clock())
                with order_scope(order.id, order.device_id):
                    await repo.add(order)
                    await self.outbox.add(
                        session,
                        "order.created",
                        order_events_pb2.OrderCreated(
                            order_id=order.id,
                            business_type=order.business_type,
                            device_id=order.device_id,
                            plan=order.plan,
                            created_by=actor,
                            locale=order.customer.locale,
                        ),
                        order_id=order.id,
                        device_id=order.device_id,
                    )
                    await self._auto_review(session, order)
                    await repo.save(order)
                return order, True
        except IntegrityError:
            # A concurrent retry with the same request id won the race: answer with its order.
            async with self.db.reading() as session:
                winner = await OrderRepository(session).by_request_id(new.client_request_id)
            if winner is None:
                raise
            return winner, False

    async def _auto_review(self, session: AsyncSession, order: Order) -> None:
        # Validation has already proved the order complete; a manual review queue comes later.
        now = self.clock()
        change = order.apply(Trigger.APPROVE, AUTO_REVIEWER, "AUTO_APPROVED_COMPLETE", now)
        order.reach("review_approved", now)
        await self._state_changed(session, order, change)
        await self.outbox.add(
            session,
            "order.approved",
            order_events_pb2.OrderApproved(
                order_id=order.id,
                business_type=order.business_type,
                device_id=order.device_id,
                plan=order.plan,
                locale=order.customer.locale,
                approved_by=AUTO_REVIEWER,
            ),
            order_id=order.id,
            device_id=order.device_id,
        )

    async def _state_changed(
        self, session: AsyncSession, order: Order, change: StateChange
    ) -> None:
        await self.outbox.add(
            session,
            "order.state_changed",
            order_events_pb2.OrderStateChanged(
                order_id=order.id,
                business_type=order.business_type,
                from_state=STATE_TO_PROTO[change.from_state],
                to_state=STATE_TO_PROTO[change.to_state],
                actor=change.actor,
                reason_code=change.reason_code,
            ),
            order_id=order.id,
            device_id=order.device_id,
        )

    # --- following downstream work ----------------------------------------------------------

    async def load_for_update(self, session: AsyncSession, order_id: str) -> Order:
        order = await OrderRepository(session).get(order_id, for_update=True)
        if order is None:
            raise NotFound("order", order_id)
        return order

    async def reach_milestone(
        self, session: AsyncSession, order_id: str, milestone: str, **fields: str
    ) -> Order:
        order = await self.load_for_update(session, order_id)
        now = self.clock()
        previous = max(order.milestones.values(), default=order.created_at)
        changed = order.reach(milestone, now)
        if changed:
            # How long the stage that ends in this milestone took, for the SLA dashboards.
            stage_duration.record(
                max(0.0, (now - previous).total_seconds()),
                {"stage": milestone, "business_type": order.business_type},
            )
        for name, value in fields.items():
            if value and getattr(order, name) != value:
                setattr(order, name, value)
                changed = True
        if order.ready_to_complete:
            change = order.apply(
                Trigger.COMPLETE, "provisioning", "SERVICE_ACTIVE_CUSTOMER_NOTIFIED", now
            )
            await self._state_changed(session, order, change)
            completed = order_events_pb2.OrderCompleted(
                order_id=order.id,
                business_type=order.business_type,
                device_id=order.device_id,
                voucher_id=order.voucher_id,
                milestones=milestone_messages(order),
                history=history_messages(order.history),
            )
            completed.created_at.FromDatetime(order.created_at)
            await self.outbox.add(
                session, "order.completed", completed, order_id=order.id, device_id=order.device_id
            )
            changed = True
        if changed:
            await OrderRepository(session).save(order)
        return order

    async def transition(
        self,
        session: AsyncSession,
        order_id: str,
        trigger: Trigger,
        *,
        actor: str,
        reason_code: str,
        alarm_id: str = "",
    ) -> Order:
        order = await self.load_for_update(session, order_id)
        change = order.apply(trigger, actor, reason_code, self.clock())
        if alarm_id:
            order.alarm_id = alarm_id
        await self._state_changed(session, order, change)
        await OrderRepository(session).save(order)
        return order

    # --- queries --------------------------------------------------------------------------

    async def get(self, order_id: str) -> Order:
        async with self.db.reading() as session:
            order = await OrderRepository(session).get(order_id)
        if order is None:
            raise NotFound("order", order_id)
        return order

    async def list_orders(
        self, *, limit: int, after_id: str | None, state: str | None, business_type: str | None
    ) -> list[Order]:
        async with self.db.reading() as session:
            return await OrderRepository(session).list_orders(
                limit=limit, after_id=after_id, state=state, business_type=business_type
            )

    async def changed_since(self, since: datetime, order_ids: Sequence[str]) -> list[Order]:
        async with self.db.reading() as session:
            return await OrderRepository(session).changed_since(since, order_ids or None)
