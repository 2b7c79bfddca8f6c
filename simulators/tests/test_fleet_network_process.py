"""The fleet process: activation on the network side, defects by RPC, the version an apply
replaced, over real gRPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stub(channel: grpc.aio.Channel) -> Any:
    return agent_pb2_grpc.DeviceAgentServiceStub(channel)


async def test_activate_and_deactivate_are_idempotent(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await agent.ActivateService(
            agent_pb2.ActivateServiceRequest(device_id="CPE-0015", idempotency_key="net-0")
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    applied = await agent.ApplyConfig(
        agent_pb2.ApplyConfigRequest(
            device_id="CPE-0015", idempotency_key="net-cfg", settings={"service.enabled": "true"}
        )
    )
    assert (applied.config_version, applied.previous_version) == (2, 1)
    request = agent_pb2.ActivateServiceRequest(
        device_id="CPE-0015", idempotency_key="net-1", reference="ORD-1"
    )
    first = await agent.ActivateService(request)
    second = await agent.ActivateService(request)
    assert first.service_active and not first.replayed and first.config_version == 2
    assert second.replayed and second.activation_id == first.activation_id
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0015"))
    assert info.info.service_active
    off = await agent.DeactivateService(
        agent_pb2.DeactivateServiceRequest(device_id="CPE-0015", idempotency_key="net-2")
    )
    assert not off.service_active
    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id="CPE-0015"))
    assert counters.applies_by_key["net-1"] == 1 and counters.applies_by_key["net-2"] == 1


async def test_a_defect_injected_by_rpc_fails_its_test_until_the_remedy(
    fleet_channel: grpc.aio.Channel,
) -> None:
    agent = stub(fleet_channel)
    device = "CPE-0016"
    await agent.ApplyConfig(
        agent_pb2.ApplyConfigRequest(
            device_id=device, idempotency_key="d-cfg", settings={"service.enabled": "true"}
        )
    )
    await agent.InjectFault(
        agent_pb2.InjectFaultRequest(device_id=device, defect="duplex_mismatch")
    )
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device))
    assert list(info.info.defects) == ["duplex_mismatch"]
    test = agent_pb2.RunTestRequest(
        device_id=device, kind=agent_pb2.TEST_KIND_FUNCTIONAL, idempotency_key="d-t"
    )
    result = await agent.RunTest(test)
    assert not result.passed and result.measurements["service_up"] == 0
    await agent.ApplyConfig(
        agent_pb2.ApplyConfigRequest(
            device_id=device, idempotency_key="d-adj", settings={"wan.port_mode": "1000-full"}
        )
    )
    result = await agent.RunTest(test)
    assert result.passed and result.measurements["service_up"] == 1
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id=device, defect="duplex_mismatch"))
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device))
    assert not info.info.defects


@pytest.mark.parametrize(
    "request_",
    [
        agent_pb2.InjectFaultRequest(device_id="CPE-0017"),
        agent_pb2.InjectFaultRequest(device_id="CPE-0017", defect="gremlins"),
    ],
)
async def test_a_fault_needs_exactly_one_known_category_or_defect(
    fleet_channel: grpc.aio.Channel, request_: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub(fleet_channel).InjectFault(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
