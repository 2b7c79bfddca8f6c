"""TelemetryIngestService: a client stream of sample batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import trace

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.api.convert import readings_from_proto
from orderline_device_monitor.app.ingest import TelemetryIngest


class TelemetryIngestApi(device_pb2_grpc.TelemetryIngestServiceServicer):
    def __init__(self, ingest: TelemetryIngest) -> None:
        self.ingest = ingest

    async def StreamTelemetry(
        self,
        request_iterator: AsyncIterator[device_pb2.StreamTelemetryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> device_pb2.StreamTelemetryResponse:
        accepted = rejected = batches = 0
        async for batch in request_iterator:
            result = await self.ingest.ingest(readings_from_proto(batch.samples))
            accepted += result.accepted
            rejected += result.rejected
            batches += 1
        span = trace.get_current_span()
        span.set_attribute("orderline.telemetry.batches", batches)
        span.set_attribute("orderline.telemetry.accepted", accepted)
        span.set_attribute("orderline.telemetry.rejected", rejected)
        return device_pb2.StreamTelemetryResponse(accepted=accepted)
