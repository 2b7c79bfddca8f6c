"""The simulators with mutual TLS, as real processes: the fleet serves only clients presenting a
certificate the CA signed, and streams its telemetry to device-monitor's address presenting
its own; the gateway serves TLS only too. Certificates are made at test time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_devtools.certificates import Authority, issue, make_ca
from orderline_devtools.local import free_port
from orderline_runtime.rpc.client import open_channel
from orderline_runtime.rpc.tls import TlsConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Ingest(device_pb2_grpc.TelemetryIngestServiceServicer):
    def __init__(self) -> None:
        self.batches: asyncio.Queue[device_pb2.StreamTelemetryRequest] = asyncio.Queue()

    async def StreamTelemetry(
        self, request_iterator: AsyncIterator[device_pb2.StreamTelemetryRequest], context: Any
    ) -> device_pb2.StreamTelemetryResponse:
        accepted = 0
        async for batch in request_iterator:
            accepted += len(batch.samples)
            await self.batches.put(batch)
        return device_pb2.StreamTelemetryResponse(accepted=accepted)


def tls_env(tls: TlsConfig) -> dict[str, str]:
    return {
        "ORDERLINE_TLS_CERT_FILE": str(tls.cert_file),
        "ORDERLINE_TLS_KEY_FILE": str(tls.key_file),
        "ORDERLINE_TLS_CA_FILE": str(tls.ca_file),
    }


async def health(channel: grpc.aio.Channel) -> int:
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return int(reply.status)


async def test_the_fleet_serves_and_streams_over_mutual_tls(spawn: Any, tmp_path: Path) -> None:
    ca: Authority = make_ca(tmp_path / "ca")
    # device-monitor's ingest, requiring client certificates the CA signed.
    ingest = Ingest()
    server = grpc.aio.server()
    device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server(ingest, server)
    port = free_port()
    monitor_tls = issue(ca, tmp_path / "monitor", "device-monitor")
    server.add_secure_port(f"127.0.0.1:{port}", monitor_tls.server_credentials())
    await server.start()
    try:
        fleet = await spawn(
            "orderline_simulators.fleet",
            {
                "ORDERLINE_FLEET_PORT": "0",
                "ORDERLINE_FLEET_DEVICES": "3",
                "ORDERLINE_TELEMETRY_TARGET": f"127.0.0.1:{port}",
                "ORDERLINE_TELEMETRY_INTERVAL_SECONDS": "0.2",
                **tls_env(issue(ca, tmp_path / "fleet", "device-fleet")),
            },
        )
        batch = await asyncio.wait_for(ingest.batches.get(), 20)
        assert len(batch.samples) == 3
        client = issue(ca, tmp_path / "client", "device-monitor-client")
        assert await health(open_channel(fleet.address, client)) == (
            health_pb2.HealthCheckResponse.SERVING
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health(grpc.aio.insecure_channel(fleet.address))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health(grpc.aio.secure_channel(fleet.address, anonymous))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_the_gateway_serves_only_tls_clients_with_a_certificate(
    spawn: Any, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path / "ca")
    gateway = await spawn(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", **tls_env(issue(ca, tmp_path / "gw", "gateway"))},
    )
    client = issue(ca, tmp_path / "client", "provisioning")
    assert await health(open_channel(gateway.address, client)) == (
        health_pb2.HealthCheckResponse.SERVING
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health(grpc.aio.insecure_channel(gateway.address))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
