"""Use cases of intake: record an order, review it, and follow it from downstream events.

Every command runs in one unit of work: the order's change and the events it causes commit
together. Queries open a read-only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from orderline_catalogue import Catalogue
from orderline_intake.app import payloads
from orderline_intake.app.ports import IntakeUnitOfWork, OrderRepository
from orderline_intake.domain.order import NewOrder, Order, StateChange
from orderline_intake.domain.states import Trigger
from orderline_intake.domain.validation import validate_new_order
from orderline_runtime.clock import Clock
from orderline_runtime.errors import Conflict, NotFound
from orderline_runtime.ids import new_id
from orderline_runtime.metrics import stage_duration
from orderline_runtime.telemetry import order_scope
from orderline_runtime.unit_of_work import UnitOfWork

AUTO_REVIEWER = "intake/auto-review"
# Birth dates on identity cards are the operator's dates (China Standard Time, no DST).
OPERATOR_TZ = timezone(timedelta(hours=8), "UTC+8")


class OrderApp:
    def __init__(self, uow: IntakeUnitOfWork, catalogue: Catalogue, clock: Clock) -> None:
        self.uow = uow
        self.catalogue = catalogue
        self.clock = clock

    # --- commands -------------------------------------------------------------------------

    async def create(self, new: NewOrder, actor: str) -> tuple[Order, bool]:
        """Records the order; a complete one is approved at once. Idempotent on the request id."""
        validate_new_order(new, self.catalogue, self.clock().astimezone(OPERATOR_TZ).date())
        try:
            async with self.uow() as uow:
                existing = await uow.repos.by_request_id(new.client_request_id)
                if existing is not None:
                    return existing, False
                order = Order.record(new_id(), new, actor, self.clock())
                with order_scope(order.id, order.device_id):
                    await uow.repos.add(order)
                    uow.emit(payloads.order_created(order, actor))
                    self._auto_review(uow, order)
                    await uow.repos.save(order)
                return order, True
        except Conflict:
            # A concurrent retry with the same request id won the race: answer with its order.
            async with self.uow(read_only=True) as uow:
                winner = await uow.repos.by_request_id(new.client_request_id)
            if winner is None:
                raise
            return winner, False

    def _auto_review(self, uow: UnitOfWork[OrderRepository], order: Order) -> None:
        # Validation has already proved the order complete; a manual review queue comes later.
        now = self.clock()
        change = order.apply(Trigger.APPROVE, AUTO_REVIEWER, "AUTO_APPROVED_COMPLETE", now)
        order.reach("review_approved", now)
        self._state_changed(uow, order, change)
        uow.emit(payloads.order_approved(order, AUTO_REVIEWER))

    @staticmethod
    def _state_changed(uow: UnitOfWork[OrderRepository], order: Order, change: StateChange) -> None:
        uow.emit(payloads.state_changed(order, change))

    # --- following downstream work (inside an event handler's unit of work) ----------------

    async def reach_milestone(
        self, uow: UnitOfWork[OrderRepository], order_id: str, milestone: str, **fields: str
    ) -> Order:
        order = await self._load_for_update(uow, order_id)
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
            self._state_changed(uow, order, change)
            uow.emit(payloads.order_completed(order))
            changed = True
        if changed:
            await uow.repos.save(order)
        return order

    async def transition(
        self,
        uow: UnitOfWork[OrderRepository],
        order_id: str,
        trigger: Trigger,
        *,
        actor: str,
        reason_code: str,
        alarm_id: str = "",
    ) -> Order:
        order = await self._load_for_update(uow, order_id)
        change = order.apply(trigger, actor, reason_code, self.clock())
        if alarm_id:
            order.alarm_id = alarm_id
        self._state_changed(uow, order, change)
        await uow.repos.save(order)
        return order

    @staticmethod
    async def _load_for_update(uow: UnitOfWork[OrderRepository], order_id: str) -> Order:
        order = await uow.repos.get(order_id, for_update=True)
        if order is None:
            raise NotFound("order", order_id)
        return order

    # --- queries --------------------------------------------------------------------------

    def business_types(self) -> Catalogue:
        return self.catalogue

    async def get(self, order_id: str) -> Order:
        async with self.uow(read_only=True) as uow:
            order = await uow.repos.get(order_id)
        if order is None:
            raise NotFound("order", order_id)
        return order

    async def list_orders(
        self, *, limit: int, after_id: str | None, state: str | None, business_type: str | None
    ) -> list[Order]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.list_orders(
                limit=limit, after_id=after_id, state=state, business_type=business_type
            )

    async def changed_since(self, since: datetime, order_ids: Sequence[str]) -> list[Order]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.changed_since(since, order_ids or None)
