"""TelemetryIngestService: a client stream of sample batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import trace

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.api.convert import readings_from_proto
from orderline_device_monitor.app.ingest import TelemetryIngest

if TYPE_CHECKING:
    from orderline_device_monitor.api.routing import PartitionRouting


class TelemetryIngestApi(device_pb2_grpc.TelemetryIngestServiceServicer):
    def __init__(self, ingest: TelemetryIngest, routing: PartitionRouting | None = None) -> None:
        self.ingest = ingest
        # Replicas sharing the fleet: each batch's samples go to their partitions' owners.
        self.routing = routing

    async def StreamTelemetry(
        self,
        request_iterator: AsyncIterator[device_pb2.StreamTelemetryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> device_pb2.StreamTelemetryResponse:
        accepted = rejected = batches = 0
        routing = self.routing
        for_all = routing.every if routing is not None else None
        async for batch in request_iterator:
            samples = batch.samples
            if routing is None or routing.partitions.all_owned:
                # One replica evaluates the whole fleet: nothing to split.
                result = await self.ingest.ingest(readings_from_proto(samples), for_all)
                accepted += result.accepted
                rejected += result.rejected
            else:
                taken = await routing.ingest_batch(samples, context, self._evaluate)
                accepted += taken
                rejected += len(samples) - taken
            batches += 1
        span = trace.get_current_span()
        span.set_attribute("orderline.telemetry.batches", batches)
        span.set_attribute("orderline.telemetry.accepted", accepted)
        span.set_attribute("orderline.telemetry.rejected", rejected)
        return device_pb2.StreamTelemetryResponse(accepted=accepted)

    async def _evaluate(
        self, samples: Sequence[device_pb2.TelemetrySample], partitions: frozenset[int]
    ) -> int:
        result = await self.ingest.ingest(readings_from_proto(samples), partitions)
        return result.accepted
