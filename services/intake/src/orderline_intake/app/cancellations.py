"""Use cases of cancellation: the clerk's request, and provisioning's answers to it.

The request runs in one unit of work with the order's change and its events; provisioning's
answers arrive as events and run inside the consumer's unit of work
(docs/order-lifecycle.md#cancellation).
"""

from __future__ import annotations

import re
from datetime import datetime

from orderline.events.v1 import order_events_pb2
from orderline_intake.app.orders import OrderApp, Uow, _illegal
from orderline_intake.domain.cancellation import (
    CANCEL_REASONS,
    NOTHING_TO_UNDO,
    Cancellation,
    PastPointOfNoReturn,
    Route,
    assess,
    request_fingerprint,
)
from orderline_intake.domain.order import Order, StateChange
from orderline_intake.domain.states import InvalidTransition, OrderState
from orderline_intake.domain.text import says
from orderline_runtime.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    NotFound,
    PoisonMessage,
    PreconditionViolation,
    Violations,
)
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.telemetry import order_scope

log = get_logger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class CancellationApp:
    def __init__(self, orders: OrderApp) -> None:
        self.orders = orders
        self.uow = orders.uow
        self.clock = orders.clock

    # --- the clerk's request ----------------------------------------------------------------

    async def cancel(
        self, client_request_id: str, order_id: str, reason_code: str, etag: str, actor: str
    ) -> tuple[Cancellation, Order, bool]:
        """Records the cancellation request of the order: cancelled at once when the order was
        never approved, else assessed by provisioning. Idempotent on the request id; a request
        id reused for another request is ALREADY_EXISTS."""
        _validate(client_request_id, order_id, reason_code)
        try:
            async with self.uow() as uow:
                existing = await uow.repos.cancellation_by_request_id(client_request_id)
                if existing is not None:
                    return (*await self._retried(uow, existing, order_id, reason_code), False)
                order = await uow.repos.get(order_id, for_update=True)
                if order is None:
                    raise NotFound("order", order_id)
                with order_scope(order.id, order.device_id):
                    if etag and etag != order.etag:
                        raise Conflict(
                            f"order {order.id} changed since etag {etag!r} was read (now "
                            f"{order.etag!r}): read it again and retry",
                            reason="STALE_ETAG",
                        )
                    cancellation = self._request(uow, order, client_request_id, reason_code, actor)
                    await uow.repos.add_cancellation(cancellation)
                    await self.orders._save(uow, order)
                return cancellation, order, True
        except Conflict:
            # A concurrent retry with the same request id won the race: answer with its result.
            async with self.uow(read_only=True) as uow:
                winner = await uow.repos.cancellation_by_request_id(client_request_id)
                if winner is None:
                    raise
                return (*await self._retried(uow, winner, order_id, reason_code), False)

    def _request(
        self, uow: Uow, order: Order, client_request_id: str, reason_code: str, actor: str
    ) -> Cancellation:
        if order.state in (OrderState.ASSESSING_CANCELLATION, OrderState.PENDING_CANCELLATION):
            raise FailedPrecondition(
                str(
                    says(
                        f"order {order.id} is already being cancelled ({order.state.value}): "
                        "see its cancellation request",
                        f"工单 {order.id} 已在撤单处理中",
                    )
                ),
                reason="CANCELLATION_IN_PROGRESS",
                violations=[PreconditionViolation("STATE", order.id, order.state.value)],
            )
        try:
            route = assess(order)
        except PastPointOfNoReturn as past:
            raise FailedPrecondition(
                str(past.text),
                reason="POINT_OF_NO_RETURN",
                violations=[
                    PreconditionViolation(
                        "POINT_OF_NO_RETURN",
                        order.id,
                        str(says("the service is active", "业务已开通")),
                    )
                ],
            ) from None
        now = self.clock()
        try:
            cancellation, change = Cancellation.request(
                new_id(), client_request_id, order, reason_code, actor, now
            )
        except InvalidTransition as exc:
            raise _illegal(order.id, exc) from None
        self._changed(uow, order, [change])
        if route is Route.DIRECT:
            # No provisioning job exists for an order never approved: nothing to undo.
            self._changed(uow, order, cancellation.complete_directly(order, now))
        else:
            cancellation.assessing()
            uow.emit(
                order_events_pb2.OrderCancellationRequested(
                    order_id=order.id,
                    business_type=order.business_type,
                    device_id=order.device_id,
                    cancellation_id=cancellation.id,
                    reason_code=reason_code,
                    requested_by=actor,
                )
            )
        return cancellation

    async def _retried(
        self, uow: Uow, existing: Cancellation, order_id: str, reason_code: str
    ) -> tuple[Cancellation, Order]:
        if existing.request_fingerprint != request_fingerprint(order_id, reason_code):
            raise AlreadyExists(
                str(
                    says(
                        f"client_request_id {existing.client_request_id!r} was used for "
                        f"cancellation {existing.id} of order {existing.order_id} with other "
                        "details: use a new request id for a new request",
                        f"请求编号 {existing.client_request_id!r} 已用于内容不同的撤单申请 "
                        f"{existing.id}, 新申请请使用新的请求编号",
                    )
                ),
                reason="REQUEST_ID_REUSED",
            )
        order = await uow.repos.get(existing.order_id)
        if order is None:
            raise NotFound("order", existing.order_id)
        return existing, order

    @staticmethod
    def _changed(uow: Uow, order: Order, changes: list[StateChange]) -> None:
        for change in changes:
            OrderApp._state_changed(uow, order, change)

    # --- provisioning's answers (inside an event handler's unit of work) ---------------------

    async def accepted(self, uow: Uow, order_id: str, cancellation_id: str) -> None:
        """Provisioning stops the job and undoes its device work: pendingCancellation."""
        found = await self._open(uow, order_id, cancellation_id)
        if found is None:
            return
        cancellation, order = found
        changes = cancellation.accepted(order, self.clock())
        if changes:
            self._changed(uow, order, changes)
            await self.orders._save(uow, order)

    async def completed(
        self,
        uow: Uow,
        order_id: str,
        cancellation_id: str,
        compensation: str,
        rolled_back_to: int | None,
    ) -> None:
        """The job is cancelled and its device work undone: the order is cancelled."""
        found = await self._open(uow, order_id, cancellation_id)
        if found is None:
            return
        cancellation, order = found
        now = self.clock()
        changes = cancellation.completed(
            order, compensation or NOTHING_TO_UNDO, rolled_back_to, now
        )
        self._changed(uow, order, changes)
        await uow.repos.save_cancellation(cancellation)
        await self.orders._save(uow, order)

    async def declined(
        self, uow: Uow, order_id: str, cancellation_id: str, reason_code: str
    ) -> None:
        """The job was past its point of no return: the order goes on, the request ends."""
        found = await self._open(uow, order_id, cancellation_id)
        if found is None:
            return
        cancellation, order = found
        now = self.clock()
        self._changed(uow, order, cancellation.declined(order, reason_code, now))
        await uow.repos.save_cancellation(cancellation)
        # Milestones reached while it was assessed may complete the order now.
        await self.orders._complete_if_ready(uow, order, now)
        await self.orders._save(uow, order)

    async def _open(
        self, uow: Uow, order_id: str, cancellation_id: str
    ) -> tuple[Cancellation, Order] | None:
        cancellation = await uow.repos.cancellation(cancellation_id, for_update=True)
        if cancellation is None or cancellation.order_id != order_id:
            raise PoisonMessage(
                f"no cancellation {cancellation_id!r} of order {order_id!r} to answer"
            )
        if not cancellation.open:
            log.info(
                "cancellation already decided; answer ignored",
                cancellation_id=cancellation_id,
                state=cancellation.state.value,
            )
            return None
        order = await uow.repos.get(order_id, for_update=True)
        if order is None:
            raise PoisonMessage(f"no order {order_id!r}")
        return cancellation, order

    # --- queries ------------------------------------------------------------------------------

    async def get(self, cancellation_id: str) -> Cancellation:
        async with self.uow(read_only=True) as uow:
            found = await uow.repos.cancellation(cancellation_id)
        if found is None:
            raise NotFound("cancellation", cancellation_id)
        return found

    async def list(
        self, *, order_id: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[Cancellation]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.cancellations(order_id=order_id, limit=limit, after=after)


def _validate(client_request_id: str, order_id: str, reason_code: str) -> None:
    v = Violations()
    if not client_request_id:
        v.add("client_request_id", str(says("required: a key that makes retries safe", "必填")))
    elif not _REQUEST_ID.match(client_request_id):
        v.add(
            "client_request_id",
            str(says("1-64 characters of A-Z a-z 0-9 . _ : -", "1-64个字母、数字或 . _ : -")),
        )
    if not order_id:
        v.add("order_id", str(says("required", "必填")))
    elif len(order_id) > 36:
        v.add("order_id", str(says("an order id is a UUID of 36 characters", "工单编号为36位")))
    if not reason_code:
        v.add("reason_code", str(says("required: why the order is cancelled", "必填: 撤单原因")))
    elif reason_code not in CANCEL_REASONS:
        v.add(
            "reason_code",
            str(says(f"one of {', '.join(sorted(CANCEL_REASONS))}", "无效的撤单原因")),
        )
    v.raise_if_any()
