"""Cancellation requests over gRPC: messages in and out (mixed into OrderServiceApi)."""

from __future__ import annotations

from typing import Any

from orderline.order.v1 import order_pb2
from orderline_intake.api.aftercare import _id, _next, _page
from orderline_intake.api.convert import order_message
from orderline_intake.app.cancellations import CancellationApp
from orderline_intake.app.pii_reads import PiiReadApp
from orderline_intake.domain.cancellation import Cancellation, CancellationState
from orderline_runtime.errors import Violations
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.telemetry import order_scope
from orderline_runtime.timestamps import set_timestamp

STATE_TO_PROTO: dict[CancellationState, order_pb2.CancellationState.ValueType] = {
    CancellationState.ACKNOWLEDGED: order_pb2.CANCELLATION_STATE_ACKNOWLEDGED,
    CancellationState.IN_PROGRESS: order_pb2.CANCELLATION_STATE_IN_PROGRESS,
    CancellationState.DONE: order_pb2.CANCELLATION_STATE_DONE,
    CancellationState.TERMINATED: order_pb2.CANCELLATION_STATE_TERMINATED,
}


def cancellation_message(c: Cancellation) -> order_pb2.Cancellation:
    msg = order_pb2.Cancellation(
        id=c.id,
        client_request_id=c.client_request_id,
        order_id=c.order_id,
        state=STATE_TO_PROTO[c.state],
        reason_code=c.reason_code,
        requested_by=c.requested_by,
        decline_reason=c.decline_reason,
        detail=c.detail,
        rolled_back=c.rolled_back,
        rolled_back_to=c.rolled_back_to,
    )
    set_timestamp(msg.requested_at, c.requested_at)
    if c.decided_at is not None:
        set_timestamp(msg.decided_at, c.decided_at)
    return msg


class CancellationRpcs:
    cancellations: CancellationApp
    pii_reads: PiiReadApp

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Any
    ) -> order_pb2.CancelOrderResponse:
        principal = current_principal()
        order_id = request.order_id.strip()
        with order_scope(order_id):
            cancellation, order, created = await self.cancellations.cancel(
                request.client_request_id.strip(),
                order_id,
                request.reason_code.strip().upper(),
                request.etag.strip(),
                principal.subject,
            )
        await self.pii_reads.record([order.id], principal.subject, principal.roles, "CancelOrder")
        return order_pb2.CancelOrderResponse(
            cancellation=cancellation_message(cancellation),
            order=order_message(order, principal.roles),
            created=created,
        )

    async def GetCancellation(
        self, request: order_pb2.GetCancellationRequest, context: Any
    ) -> order_pb2.GetCancellationResponse:
        v = Violations()
        cancellation_id = _id(v, request.cancellation_id, "cancellation_id")
        v.raise_if_any()
        found = await self.cancellations.get(cancellation_id)
        return order_pb2.GetCancellationResponse(cancellation=cancellation_message(found))

    async def ListCancellations(
        self, request: order_pb2.ListCancellationsRequest, context: Any
    ) -> order_pb2.ListCancellationsResponse:
        v = Violations()
        order_id = _id(v, request.order_id, "order_id", required=False)
        filters: dict[str, object] = {"list": "cancellations", "order_id": order_id}
        limit, after = _page(v, request.page_size, request.page_token, filters)
        v.raise_if_any()
        found = await self.cancellations.list(order_id=order_id or None, limit=limit, after=after)
        token = (
            _next(len(found), limit, found[-1].requested_at, found[-1].id, filters) if found else ""
        )
        return order_pb2.ListCancellationsResponse(
            cancellations=[cancellation_message(c) for c in found], next_page_token=token
        )
