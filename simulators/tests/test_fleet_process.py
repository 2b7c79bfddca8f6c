"""The device fleet as a real process over real gRPC."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_KINDS = [
    agent_pb2.TEST_KIND_FUNCTIONAL,
    agent_pb2.TEST_KIND_PERFORMANCE,
    agent_pb2.TEST_KIND_SECURITY,
    agent_pb2.TEST_KIND_ENVIRONMENTAL,
    agent_pb2.TEST_KIND_USER_INTERFACE,
]


def stub(channel: grpc.aio.Channel) -> Any:
    return agent_pb2_grpc.DeviceAgentServiceStub(channel)


async def failed_kinds(agent: Any, device_id: str) -> set[int]:
    failed = set()
    for kind in ALL_KINDS:
        result = await agent.RunTest(
            agent_pb2.RunTestRequest(device_id=device_id, kind=kind, idempotency_key=f"t-{kind}")
        )
        assert result.measurements, "every test reports what it measured"
        if not result.passed:
            failed.add(kind)
    return failed


async def test_health_is_serving(fleet_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(fleet_channel)
    for service in ("", "orderline.agent.v1.DeviceAgentService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_device_info_and_start_faults(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    info = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0001"))).info
    assert info.device_id == "CPE-0001"
    assert info.model and info.firmware
    assert info.config_version == 1
    assert list(info.faults) == []
    hot = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0007"))).info
    assert list(hot.faults) == [device_pb2.HEALTH_CATEGORY_THERMAL]
    line = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0013"))).info
    assert list(line.faults) == [device_pb2.HEALTH_CATEGORY_LINE]
    assert await failed_kinds(agent, "CPE-0013") == {
        agent_pb2.TEST_KIND_FUNCTIONAL,
        agent_pb2.TEST_KIND_PERFORMANCE,
    }


async def test_unknown_device_is_not_found(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    calls = [
        agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0021")),
        agent.ApplyConfig(agent_pb2.ApplyConfigRequest(device_id="CPE-9999", idempotency_key="k")),
        agent.RollbackConfig(agent_pb2.RollbackConfigRequest(device_id="X", idempotency_key="k")),
        agent.RunTest(
            agent_pb2.RunTestRequest(
                device_id="CPE-0000", kind=agent_pb2.TEST_KIND_SECURITY, idempotency_key="k"
            )
        ),
        agent.InjectFault(
            agent_pb2.InjectFaultRequest(device_id="nope", category=device_pb2.HEALTH_CATEGORY_LINE)
        ),
        agent.ClearFault(agent_pb2.ClearFaultRequest(device_id="nope")),
        agent.GetCounters(agent_pb2.GetCountersRequest(device_id="nope")),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(), "device_id"),
        ("ApplyConfig", agent_pb2.ApplyConfigRequest(idempotency_key="k"), "device_id"),
        ("ApplyConfig", agent_pb2.ApplyConfigRequest(device_id="CPE-0001"), "idempotency_key"),
        (
            "RollbackConfig",
            agent_pb2.RollbackConfigRequest(device_id="CPE-0001"),
            "idempotency_key",
        ),
        (
            "RunTest",
            agent_pb2.RunTestRequest(device_id="CPE-0001", idempotency_key="k"),
            "kind",
        ),
        (
            "RunTest",
            agent_pb2.RunTestRequest(device_id="CPE-0001", kind=agent_pb2.TEST_KIND_FUNCTIONAL),
            "idempotency_key",
        ),
        ("InjectFault", agent_pb2.InjectFaultRequest(device_id="CPE-0001"), "category"),
    ],
)
async def test_missing_fields_are_invalid_argument(
    fleet_channel: grpc.aio.Channel, method: str, request_: Any, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await getattr(stub(fleet_channel), method)(request_)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The google.rpc details name the field.
    status = rpc_status.from_call(exc.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == field


async def test_apply_is_idempotent_and_counted_once(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    request = agent_pb2.ApplyConfigRequest(
        device_id="CPE-0002", idempotency_key="job-1:config", settings={"vlan": "100"}
    )
    first = await agent.ApplyConfig(request)
    again = await agent.ApplyConfig(request)
    assert (first.config_version, first.replayed) == (2, False)
    assert (again.config_version, again.replayed) == (2, True)

    # Concurrent repeats of a new key: one application, everyone sees the same version.
    burst = agent_pb2.ApplyConfigRequest(
        device_id="CPE-0002", idempotency_key="job-2:config", settings={"vlan": "200"}
    )
    results = await asyncio.gather(*(agent.ApplyConfig(burst) for _ in range(20)))
    assert {r.config_version for r in results} == {3}
    assert sum(not r.replayed for r in results) == 1

    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id="CPE-0002"))
    assert dict(counters.applies_by_key) == {"job-1:config": 1, "job-2:config": 1}
    assert counters.config_applies == 2
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0002"))
    assert info.info.config_version == 3

    fleet_wide = await agent.GetCounters(agent_pb2.GetCountersRequest())
    assert fleet_wide.applies_by_key["CPE-0002/job-1:config"] == 1
    assert max(fleet_wide.applies_by_key.values()) == 1


async def test_rollback_is_idempotent(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    await agent.ApplyConfig(
        agent_pb2.ApplyConfigRequest(device_id="CPE-0003", idempotency_key="a", settings={"x": "1"})
    )
    rollback = agent_pb2.RollbackConfigRequest(device_id="CPE-0003", idempotency_key="undo-a")
    first = await agent.RollbackConfig(rollback)
    again = await agent.RollbackConfig(rollback)
    assert (first.config_version, first.replayed) == (1, False)
    assert (again.config_version, again.replayed) == (1, True)
    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id="CPE-0003"))
    assert dict(counters.applies_by_key) == {"a": 1, "undo-a": 1}
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await agent.RollbackConfig(
            agent_pb2.RollbackConfigRequest(device_id="CPE-0003", idempotency_key="b", to_version=9)
        )
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION


CATEGORY_FAILS = [
    (device_pb2.HEALTH_CATEGORY_MECHANICAL, {agent_pb2.TEST_KIND_ENVIRONMENTAL}),
    (device_pb2.HEALTH_CATEGORY_DISPLAY, {agent_pb2.TEST_KIND_USER_INTERFACE}),
    (device_pb2.HEALTH_CATEGORY_INPUT, {agent_pb2.TEST_KIND_USER_INTERFACE}),
    (
        device_pb2.HEALTH_CATEGORY_LINE,
        {agent_pb2.TEST_KIND_FUNCTIONAL, agent_pb2.TEST_KIND_PERFORMANCE},
    ),
    (
        device_pb2.HEALTH_CATEGORY_RESOURCES,
        {agent_pb2.TEST_KIND_PERFORMANCE, agent_pb2.TEST_KIND_SECURITY},
    ),
    (device_pb2.HEALTH_CATEGORY_THERMAL, {agent_pb2.TEST_KIND_ENVIRONMENTAL}),
    (device_pb2.HEALTH_CATEGORY_SAFETY, {agent_pb2.TEST_KIND_SECURITY}),
]


@pytest.mark.parametrize(("index", "case"), list(enumerate(CATEGORY_FAILS)))
async def test_injected_fault_fails_the_related_tests(
    fleet_channel: grpc.aio.Channel, index: int, case: tuple[int, set[int]]
) -> None:
    category, expected = case
    device_id = f"CPE-{index + 14:04d}"  # CPE-0014 .. CPE-0020, untouched by other tests
    agent = stub(fleet_channel)
    assert await failed_kinds(agent, device_id) == set()
    await agent.InjectFault(agent_pb2.InjectFaultRequest(device_id=device_id, category=category))
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device_id))
    assert list(info.info.faults) == [category]
    assert await failed_kinds(agent, device_id) == expected
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id=device_id, category=category))
    assert await failed_kinds(agent, device_id) == set()


async def test_failed_test_reports_out_of_range_measurement(
    fleet_channel: grpc.aio.Channel,
) -> None:
    agent = stub(fleet_channel)
    result = await agent.RunTest(
        agent_pb2.RunTestRequest(
            device_id="CPE-0007", kind=agent_pb2.TEST_KIND_ENVIRONMENTAL, idempotency_key="env-1"
        )
    )
    assert not result.passed
    assert "thermal fault" in result.detail
    assert result.measurements["temperature_c"] > 75.0


async def test_clear_all_faults(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    for category in (device_pb2.HEALTH_CATEGORY_SAFETY, device_pb2.HEALTH_CATEGORY_DISPLAY):
        await agent.InjectFault(
            agent_pb2.InjectFaultRequest(device_id="CPE-0004", category=category)
        )
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0004"))
    assert len(info.info.faults) == 2
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id="CPE-0004"))
    info = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0004"))
    assert list(info.info.faults) == []


async def test_sigint_also_stops_gracefully(spawn: Any) -> None:
    sim = await spawn(
        "orderline_simulators.fleet",
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": "2",
            "ORDERLINE_TELEMETRY_TARGET": "",
        },
    )
    assert await sim.stop(signal.SIGINT) == 0
    assert any(entry["event"] == "stopped" for entry in sim.logs())


async def test_a_restart_keeps_what_the_devices_did_with_a_state_dir(
    spawn: Any, start_unchecked: Any, tmp_path: Path
) -> None:
    env = {
        "ORDERLINE_FLEET_PORT": "0",
        "ORDERLINE_FLEET_DEVICES": "3",
        "ORDERLINE_TELEMETRY_TARGET": "",
        "ORDERLINE_FLEET_STATE_DIR": str(tmp_path / "fleet-state"),
    }
    first = await start_unchecked("orderline_simulators.fleet", env, tmp_path / "first.stderr")
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            agent = stub(channel)
            applied = await agent.ApplyConfig(
                agent_pb2.ApplyConfigRequest(
                    device_id="CPE-0002", idempotency_key="job-1:configure", settings={"vlan": "42"}
                )
            )
            await agent.InjectFault(
                agent_pb2.InjectFaultRequest(
                    device_id="CPE-0003", category=device_pb2.HEALTH_CATEGORY_THERMAL
                )
            )
    finally:
        first.proc.kill()  # a crash, not a stop
        await first.proc.wait()

    second = await spawn("orderline_simulators.fleet", env)
    async with grpc.aio.insecure_channel(second.address) as channel:
        agent = stub(channel)
        got = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0002"))
        info = got.info
        assert info.config_version == applied.config_version > 1
        # Configured before the crash: the activation is not refused as on a factory device,
        # and a repeat of the configuration's key is a replay, not a second change.
        activated = await agent.ActivateService(
            agent_pb2.ActivateServiceRequest(
                device_id="CPE-0002", idempotency_key="job-1:activate", reference="ord-1"
            )
        )
        assert activated.service_active
        again = await agent.ApplyConfig(
            agent_pb2.ApplyConfigRequest(
                device_id="CPE-0002", idempotency_key="job-1:configure", settings={"vlan": "42"}
            )
        )
        assert again.replayed and again.config_version == applied.config_version
        hot = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0003"))
        assert list(hot.info.faults) == [device_pb2.HEALTH_CATEGORY_THERMAL]
        untouched = await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id="CPE-0001"))
        assert untouched.info.config_version == 1
