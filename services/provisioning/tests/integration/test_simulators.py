"""One happy path against the real device fleet and gateway simulators (separate processes),
with device-monitor and intake still played by the in-test fakes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc

# The simulators get the identity the services get in the tests (the development tokens):
# provisioning's sends carry its service token, and only that token reads a delivery in clear.
IDENTITY = {"ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true"}
SERVICE = (("authorization", "Bearer dev-service"),)


def _read(path: Path) -> str:
    return path.read_text()


async def start_simulator(module: str, env: dict[str, str], log: Path) -> tuple[Any, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            env={**clean, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    if not line.startswith("ready on "):
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{module} did not start: {line!r}\n{_read(log)}")
    return proc, line.removeprefix("ready on ")


@pytest_asyncio.fixture
async def simulators(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    fleet, fleet_address = await start_simulator(
        "orderline_simulators.fleet",
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": "10",
            "ORDERLINE_TELEMETRY_TARGET": "",
            **IDENTITY,
        },
        tmp_path / "fleet.log",
    )
    gateway, gateway_address = await start_simulator(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_GATEWAY_FAILURE_RATE": "0.3", **IDENTITY},
        tmp_path / "gateway.log",
    )
    try:
        yield fleet_address, gateway_address
    finally:
        for proc in (fleet, gateway):
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_happy_path_against_the_fleet_and_gateway_simulators(
    start_provisioning: Any, simulators: tuple[str, str], bus: Any, order_id: str
) -> None:
    fleet_address, gateway_address = simulators
    await start_provisioning(device_agent_address=fleet_address, gateway_address=gateway_address)
    await bus.approve(order_id, "CPE-0003", business_type="iptv", plan="iptv-basic")

    notified = await bus.wait_for_event(order_id, "provisioning.customer_notified", within=30)
    job_id = notified.payload.job_id
    async with grpc.aio.insecure_channel(fleet_address) as channel:
        counters = await agent_pb2_grpc.DeviceAgentServiceStub(channel).GetCounters(
            agent_pb2.GetCountersRequest(device_id="CPE-0003")
        )
    assert counters.applies_by_key[f"{job_id}:configure"] == 1
    # IPTV's test profile: functional, performance, user interface; and the network side.
    assert counters.tests_run == 3
    assert counters.applies_by_key[f"{job_id}:activate"] == 1
    async with grpc.aio.insecure_channel(gateway_address) as channel:
        gateway = gateway_pb2_grpc.NotificationGatewayServiceStub(channel)
        deliveries = await gateway.ListDeliveries(
            gateway_pb2.ListDeliveriesRequest(), metadata=SERVICE
        )
        anonymous = await gateway.ListDeliveries(gateway_pb2.ListDeliveriesRequest())
    [delivery] = deliveries.deliveries
    assert delivery.idempotency_key == f"{job_id}:notify"
    assert delivery.to == "+8613800138000" and delivery.locale == "zh-CN"
    assert "网络电视" in delivery.text
    # Without a token the same delivery shows its number and text masked.
    [masked] = anonymous.deliveries
    assert masked.to == "+861******8000" and "网络电视" not in masked.text
