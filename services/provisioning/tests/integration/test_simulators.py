"""One happy path against the real device fleet and gateway simulators (separate processes),
with device-monitor and intake still played by the in-test fakes."""

from __future__ import annotations

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


@pytest_asyncio.fixture
async def simulators(simulator_processes: Any) -> tuple[str, str]:
    fleet = await simulator_processes.fleet(10, env=IDENTITY)
    gateway = await simulator_processes.start(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_GATEWAY_FAILURE_RATE": "0.3", **IDENTITY},
        "gateway.log",
    )
    return fleet, gateway


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
