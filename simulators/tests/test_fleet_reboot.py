"""Reboot and access nodes: the fleet's pure domain, and the Reboot RPC of the real process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2
from orderline_simulators.common.errors import FailedPrecondition, InvalidArgument
from orderline_simulators.fleet import convert, domain
from orderline_simulators.fleet.domain import REBOOT_CLEARS, Fleet, HealthCategory
from orderline_simulators.fleet.telemetry import TelemetryGenerator


def test_devices_are_grouped_ten_to_an_access_node() -> None:
    fleet = Fleet.create(25)
    nodes = {d.device_id: d.access_node for d in fleet.devices()}
    assert nodes["CPE-0001"] == nodes["CPE-0010"] == "AN-01"
    assert nodes["CPE-0011"] == nodes["CPE-0020"] == "AN-02"
    assert nodes["CPE-0025"] == "AN-03"
    assert domain.access_node_of("CPE-0013") == "AN-02"
    assert domain.access_node_of("not-a-cpe") == ""


def test_telemetry_and_device_info_report_the_access_node() -> None:
    fleet = Fleet.create(12)
    device = fleet.get("CPE-0012")
    sample = TelemetryGenerator(1).sample(device.device_id, device.faults, _now())
    assert convert.sample_to_proto(sample).access_node_id == "AN-02"
    assert convert.device_info(device).access_node_id == "AN-02"


def test_reboot_clears_the_faults_a_restart_clears_and_no_others() -> None:
    device = Fleet.create(1).get("CPE-0001")
    for category in HealthCategory:
        device.inject_fault(category)
    result = device.reboot("r1")
    assert not result.replayed
    assert result.reboots == 1
    assert (
        set(result.cleared)
        == REBOOT_CLEARS
        == {
            HealthCategory.DISPLAY,
            HealthCategory.INPUT,
            HealthCategory.RESOURCES,
        }
    )
    # Never a failed protection, overheating hardware, a mechanical fault or a bad line.
    assert set(result.remaining) == {
        HealthCategory.SAFETY,
        HealthCategory.THERMAL,
        HealthCategory.MECHANICAL,
        HealthCategory.LINE,
    }
    assert device.faults == set(result.remaining)


def test_reboot_is_idempotent_on_its_key() -> None:
    fleet = Fleet.create(2)
    device = fleet.get("CPE-0002")
    device.inject_fault(HealthCategory.INPUT)
    first = device.reboot("k")
    device.inject_fault(HealthCategory.INPUT)
    again = device.reboot("k")
    assert (again.replayed, again.reboots, again.cleared) == (True, 1, ())
    assert HealthCategory.INPUT in device.faults  # the repeat restarted nothing
    assert first.reboots == 1
    assert device.counters().reboots == 1
    assert fleet.counters().reboots == 1
    device.reboot("k2")
    assert fleet.counters().reboots == 2


def test_reboot_needs_a_key_of_its_own() -> None:
    device = Fleet.create(1).get("CPE-0001")
    with pytest.raises(InvalidArgument):
        device.reboot("")
    device.apply_config("used", {"a": "b"})
    with pytest.raises(FailedPrecondition):
        device.reboot("used")


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.asyncio(loop_scope="session")
async def test_reboot_rpc_clears_recoverable_faults_once(fleet_channel: grpc.aio.Channel) -> None:
    agent: Any = agent_pb2_grpc.DeviceAgentServiceStub(fleet_channel)
    device_id = "CPE-0018"
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id=device_id))
    for category in (device_pb2.HEALTH_CATEGORY_INPUT, device_pb2.HEALTH_CATEGORY_SAFETY):
        await agent.InjectFault(
            agent_pb2.InjectFaultRequest(device_id=device_id, category=category)
        )
    before = (await agent.GetCounters(agent_pb2.GetCountersRequest(device_id=device_id))).reboots
    reply = await agent.Reboot(agent_pb2.RebootRequest(device_id=device_id, idempotency_key="a1"))
    assert not reply.replayed
    assert list(reply.cleared) == [device_pb2.HEALTH_CATEGORY_INPUT]
    assert list(reply.remaining) == [device_pb2.HEALTH_CATEGORY_SAFETY]
    repeat = await agent.Reboot(agent_pb2.RebootRequest(device_id=device_id, idempotency_key="a1"))
    assert repeat.replayed and repeat.reboots == reply.reboots
    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id=device_id))
    assert counters.reboots == before + 1
    info = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device_id))).info
    assert list(info.faults) == [device_pb2.HEALTH_CATEGORY_SAFETY]
    assert info.access_node_id == "AN-02"
    assert info.reboots == counters.reboots
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await agent.Reboot(agent_pb2.RebootRequest(device_id=device_id))
    assert missing.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await agent.Reboot(agent_pb2.RebootRequest(device_id="CPE-9999", idempotency_key="x"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id=device_id))
