"""Test servicers the gRPC edge tests and the server-span tests both run behind the edge: a
server stream that fails for an order id, a client stream that needs at least one sample."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_runtime.errors import NotFound, Violations


class Orders(order_pb2_grpc.OrderServiceServicer):
    async def WatchOrders(
        self, request: order_pb2.WatchOrdersRequest, context: Any
    ) -> AsyncIterator[order_pb2.WatchOrdersResponse]:
        for order_id in request.order_ids:
            if order_id == "missing":
                raise NotFound("order", order_id)
            yield order_pb2.WatchOrdersResponse(order=order_pb2.Order(id=order_id))


class Telemetry(device_pb2_grpc.TelemetryIngestServiceServicer):
    async def StreamTelemetry(
        self, request_iterator: AsyncIterator[device_pb2.StreamTelemetryRequest], context: Any
    ) -> device_pb2.StreamTelemetryResponse:
        accepted = 0
        async for batch in request_iterator:
            accepted += len(batch.samples)
        if accepted == 0:
            violations = Violations()
            violations.add("samples", "at least one sample")
            violations.raise_if_any()
        return device_pb2.StreamTelemetryResponse(accepted=accepted)
