"""The fleet streams telemetry to a real TelemetryIngestService server run by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_devtools.local import free_port
from orderline_simulators.fleet.convert import sample_from_proto
from orderline_simulators.fleet.domain import HealthCategory
from orderline_simulators.fleet.telemetry import abnormal_categories

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEVICES = 5
WAIT_SECONDS = 20.0


class Ingest(device_pb2_grpc.TelemetryIngestServiceServicer):
    """Records every batch and the metadata of every stream."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[device_pb2.StreamTelemetryRequest] = asyncio.Queue()
        self.metadata: list[dict[str, str]] = []

    async def StreamTelemetry(
        self, request_iterator: AsyncIterator[device_pb2.StreamTelemetryRequest], context: Any
    ) -> device_pb2.StreamTelemetryResponse:
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        accepted = 0
        async for batch in request_iterator:
            accepted += len(batch.samples)
            await self.batches.put(batch)
        return device_pb2.StreamTelemetryResponse(accepted=accepted)

    async def next_batch(self) -> device_pb2.StreamTelemetryRequest:
        return await asyncio.wait_for(self.batches.get(), WAIT_SECONDS)

    async def wait_for(self, predicate: Any) -> device_pb2.StreamTelemetryRequest:
        async def scan() -> device_pb2.StreamTelemetryRequest:
            while True:
                batch = await self.batches.get()
                if predicate(batch):
                    return batch

        return await asyncio.wait_for(scan(), WAIT_SECONDS)

    def drain(self) -> None:
        while not self.batches.empty():
            self.batches.get_nowait()


async def start_ingest(port: int, ingest: Ingest) -> grpc.aio.Server:
    server = grpc.aio.server()
    device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server(ingest, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    return server


def by_device(batch: device_pb2.StreamTelemetryRequest) -> dict[str, device_pb2.TelemetrySample]:
    return {s.device_id: s for s in batch.samples}


async def test_fleet_streams_telemetry_and_reconnects(spawn: Any) -> None:
    port = free_port()
    # The fleet starts first: the target is not there yet and must be picked up later.
    sim = await spawn(
        "orderline_simulators.fleet",
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": str(DEVICES),
            "ORDERLINE_TELEMETRY_TARGET": f"127.0.0.1:{port}",
            "ORDERLINE_TELEMETRY_INTERVAL_SECONDS": "0.2",
            "ORDERLINE_SERVICE_TOKEN": "fleet-token",
        },
    )
    await asyncio.sleep(0.5)
    ingest = Ingest()
    server = await start_ingest(port, ingest)
    try:
        batch = await ingest.next_batch()
        assert [s.device_id for s in batch.samples] == [f"CPE-{i:04d}" for i in range(1, 6)]
        for sample in batch.samples:
            assert sample.observed_at.seconds > 0
            assert abnormal_categories(sample_from_proto(sample)) == frozenset()
        assert ingest.metadata[0]["authorization"] == "Bearer fleet-token"

        async with grpc.aio.insecure_channel(sim.address) as channel:
            agent = agent_pb2_grpc.DeviceAgentServiceStub(channel)
            # Each sample names its device's model, the one the device agent reports.
            for sample in batch.samples:
                info = await agent.GetDeviceInfo(
                    agent_pb2.GetDeviceInfoRequest(device_id=sample.device_id)
                )
                assert sample.device_model == info.info.model != ""
            assert len({s.device_model for s in batch.samples}) > 1
            await agent.InjectFault(
                agent_pb2.InjectFaultRequest(
                    device_id="CPE-0003", category=device_pb2.HEALTH_CATEGORY_THERMAL
                )
            )
            ingest.drain()
            hot = await ingest.wait_for(lambda b: by_device(b)["CPE-0003"].temperature_c > 75.0)
            samples = by_device(hot)
            assert abnormal_categories(sample_from_proto(samples["CPE-0003"])) == {
                HealthCategory.THERMAL
            }
            for device_id, sample in samples.items():
                if device_id != "CPE-0003":
                    assert abnormal_categories(sample_from_proto(sample)) == frozenset()

            await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id="CPE-0003"))
            ingest.drain()
            await ingest.wait_for(lambda b: by_device(b)["CPE-0003"].temperature_c <= 75.0)
    finally:
        await server.stop(0)

    # The receiver goes away and comes back: the stream is reopened.
    await asyncio.sleep(0.5)
    again = Ingest()
    server = await start_ingest(port, again)
    try:
        batch = await again.next_batch()
        assert len(batch.samples) == DEVICES
        assert again.metadata[0]["authorization"] == "Bearer fleet-token"
    finally:
        await server.stop(0)
    events = [entry["event"] for entry in sim.logs()]
    assert "telemetry stream failed" in events
    assert "telemetry stream open" in events
