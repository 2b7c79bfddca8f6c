"""FactoryReset: the fleet's pure domain, and the RPC of the real process (with its state kept
across a restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline_simulators.common.errors import FailedPrecondition, InvalidArgument
from orderline_simulators.fleet.domain import Device, Fleet, HealthCategory


def _configured() -> Device:
    device = Fleet.create(1).get("CPE-0001")
    device.apply_config("job:configure", {"service.enabled": "true"})
    return device


def test_a_factory_reset_puts_the_factory_configuration_back_and_keeps_the_rest() -> None:
    device = _configured()
    device.inject_fault(HealthCategory.THERMAL)
    device.inject_defect("line_noise")
    device.activate_service("job:activate")
    result = device.factory_reset("reset-1")
    assert (result.replayed, result.factory_resets) == (False, 1)
    assert (result.config_version, result.previous_version) == (1, 2)
    assert device.config_version == 1 and device.settings == {}
    # Hardware and the network side stay as they were.
    assert device.faults == {HealthCategory.THERMAL} and device.defects == {"line_noise"}
    assert device.service_active
    assert device.counters().factory_resets == 1


def test_a_factory_reset_is_idempotent_on_its_key() -> None:
    fleet = Fleet.create(1)
    device = fleet.get("CPE-0001")
    device.apply_config("a", {"x": "1"})
    device.factory_reset("r")
    device.apply_config("b", {"x": "2"})
    again = device.factory_reset("r")
    assert (again.replayed, again.factory_resets, again.previous_version) == (True, 1, 2)
    # The repeat reset nothing: the configuration applied since stays in force.
    assert device.config_version == 3 and device.settings == {"x": "2"}
    assert fleet.counters().factory_resets == 1


def test_after_a_reset_an_old_key_replays_and_a_new_key_configures_again() -> None:
    device = _configured()
    device.factory_reset("reset-1")
    replay = device.apply_config("job:configure", {"service.enabled": "true"})
    # The agent's ledger survived: the old key changes nothing, the device stays on factory.
    assert replay.replayed and device.config_version == 1
    with pytest.raises(FailedPrecondition) as refused:
        device.activate_service("job:activate")
    assert refused.value.reason_code == "NOT_CONFIGURED"
    fresh = device.apply_config("job:configure:reconfigure1", {"service.enabled": "true"})
    # Version numbers are never reused.
    assert not fresh.replayed and (fresh.config_version, fresh.previous_version) == (3, 1)
    assert device.activate_service("job:activate").service_active


def test_a_factory_reset_needs_a_key_of_its_own() -> None:
    device = _configured()
    with pytest.raises(InvalidArgument):
        device.factory_reset("")
    with pytest.raises(FailedPrecondition):
        device.factory_reset("job:configure")


def test_the_resets_are_kept_across_a_restart_of_the_simulator() -> None:
    device = _configured()
    device.factory_reset("reset-1")
    restored = Fleet.create(1).get("CPE-0001")
    restored.restore(device.to_record())
    assert (restored.factory_resets, restored.config_version) == (1, 1)
    assert restored.factory_reset("reset-1").replayed
    # A record written before FactoryReset existed has none.
    old = {k: v for k, v in device.to_record().items() if k != "factory_resets"}
    restored.restore(old)
    assert restored.factory_resets == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_factory_reset_rpc(fleet_channel: grpc.aio.Channel) -> None:
    agent: Any = agent_pb2_grpc.DeviceAgentServiceStub(fleet_channel)
    device_id = "CPE-0016"
    applied = await agent.ApplyConfig(
        agent_pb2.ApplyConfigRequest(
            device_id=device_id, idempotency_key="fr:configure", settings={"a": "b"}
        )
    )
    reply = await agent.FactoryReset(
        agent_pb2.FactoryResetRequest(device_id=device_id, idempotency_key="fr:reset")
    )
    assert not reply.replayed
    assert (reply.config_version, reply.previous_version) == (1, applied.config_version)
    repeat = await agent.FactoryReset(
        agent_pb2.FactoryResetRequest(device_id=device_id, idempotency_key="fr:reset")
    )
    assert repeat.replayed and repeat.factory_resets == reply.factory_resets
    info = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device_id))).info
    assert info.config_version == 1 and info.factory_resets == reply.factory_resets
    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id=device_id))
    assert counters.factory_resets == 1
    assert (await agent.GetCounters(agent_pb2.GetCountersRequest())).factory_resets >= 1
    # The activation is refused as on any factory device, with the reason in ErrorInfo.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.ActivateService(
            agent_pb2.ActivateServiceRequest(device_id=device_id, idempotency_key="fr:activate")
        )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(refused.value)
    assert status is not None
    info_detail = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info_detail) and info_detail.reason == "NOT_CONFIGURED"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await agent.FactoryReset(agent_pb2.FactoryResetRequest(device_id=device_id))
    assert missing.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await agent.FactoryReset(
            agent_pb2.FactoryResetRequest(device_id="CPE-9999", idempotency_key="x")
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio(loop_scope="session")
async def test_a_reset_is_kept_across_a_restart_with_a_state_dir(
    spawn: Any, tmp_path: Path
) -> None:
    env = {
        "ORDERLINE_FLEET_PORT": "0",
        "ORDERLINE_FLEET_DEVICES": "2",
        "ORDERLINE_TELEMETRY_TARGET": "",
        "ORDERLINE_FLEET_STATE_DIR": str(tmp_path / "fleet-state"),
    }
    first = await spawn("orderline_simulators.fleet", env)
    async with grpc.aio.insecure_channel(first.address) as channel:
        agent: Any = agent_pb2_grpc.DeviceAgentServiceStub(channel)
        await agent.ApplyConfig(
            agent_pb2.ApplyConfigRequest(device_id="CPE-0002", idempotency_key="k", settings={})
        )
        await agent.FactoryReset(
            agent_pb2.FactoryResetRequest(device_id="CPE-0002", idempotency_key="r")
        )
    assert await first.stop() == 0
    second = await spawn("orderline_simulators.fleet", env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        agent = agent_pb2_grpc.DeviceAgentServiceStub(channel)
        got = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0002"))
        assert (got.info.config_version, got.info.factory_resets) == (1, 1)
