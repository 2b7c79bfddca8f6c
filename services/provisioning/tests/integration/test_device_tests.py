"""Configuration from the catalogue's templates, device tests judged against the test profile
with their measurements kept, the adjustment loop, rollback and activation, against the real
device fleet simulator (a separate process over gRPC); device-monitor, intake and the gateway
are the in-test peers."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import pytest_asyncio

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_catalogue import load_catalogue

CLERK = (("authorization", "Bearer dev-clerk"),)
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest_asyncio.fixture
async def fleet(simulator_processes: Any) -> str:
    """The fleet simulator with a few defects injected at start."""
    faults = [
        # CPE-0009: one fixable defect per test kind; CPE-0012: a damaged line; CPE-0013: a
        # broken temperature sensor.
        "CPE-0009:duplex_mismatch",
        "CPE-0009:line_noise",
        "CPE-0009:telnet_open",
        "CPE-0009:cooling_degraded",
        "CPE-0009:ui_sluggish",
        "CPE-0012:line_damaged",
        "CPE-0013:sensor_glitch",
    ]
    return str(await simulator_processes.fleet(20, faults))


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return (await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)).job


async def agent_call(address: str, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(agent_pb2_grpc.DeviceAgentServiceStub(channel), method)(request)


# Business type -> (device of an allowed model, plan).
EVERY_TYPE = {
    "broadband_install": ("CPE-0001", "300M"),
    "fixed_line": ("CPE-0002", "voice-basic"),
    "iptv": ("CPE-0003", "iptv-premium"),
    "plan_change": ("CPE-0004", "500M"),
    "dedicated_line": ("CPE-0005", "1G"),
    "relocation": ("CPE-0006", "300M"),
    "termination": ("CPE-0008", ""),
}


async def test_every_business_type_is_configured_tested_and_switched_on_the_simulator(
    start_provisioning: Any, fleet: str, bus: Any
) -> None:
    running = await start_provisioning(device_agent_address=fleet)
    orders = {kind: f"ORD-DT-{kind.upper()}" for kind in EVERY_TYPE}
    for kind, (device, plan) in EVERY_TYPE.items():
        await bus.approve(orders[kind], device, business_type=kind, plan=plan)
    for order_id in orders.values():
        await bus.wait_for_event(order_id, "provisioning.customer_notified", within=60)

    catalogue = load_catalogue()
    for kind, (device, _) in EVERY_TYPE.items():
        job = await get_job(running.address, orders[kind])
        business = catalogue.get(kind)
        assert business is not None
        assert job.state == pb.JOB_STATE_COMPLETED, (kind, job.reason, job.test_results)
        # The profile's tests, once each, every one passed with its measurements kept.
        assert [r.kind for r in job.test_results] == list(business.test_profile.tests), kind
        for result in job.test_results:
            assert result.passed and result.round == 1 and result.measurements
            assert all(not f.problem for f in result.findings)
            assert set(result.texts) == {"en", "zh-CN"}
        [change] = job.config_changes
        assert change.template == business.config_template
        assert change.idempotency_key == f"{job.id}:configure"
        assert (change.previous_version, change.config_version) == (1, 2)
        info = await agent_call(
            fleet, "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(device_id=device)
        )
        counters = await agent_call(
            fleet, "GetCounters", agent_pb2.GetCountersRequest(device_id=device)
        )
        assert counters.applies_by_key[f"{job.id}:configure"] == 1
        assert counters.applies_by_key[f"{job.id}:activate"] == 1
        action = "deactivate" if kind == "termination" else "activate"
        assert job.activation.action == action and job.activation.activation_id
        assert info.info.service_active is (kind != "termination")

    # Values from the order and the template, none hard-coded per type.
    iptv = await get_job(running.address, orders["iptv"])
    assert iptv.config_changes[0].settings["iptv.channels"] == "200"
    dedicated = await get_job(running.address, orders["dedicated_line"])
    assert dedicated.config_changes[0].settings["qos.upstream_mbps"] == "1000"
    performance = next(r for r in dedicated.test_results if r.kind == "performance")
    assert performance.measurements["throughput_mbps"] > 850
    fixed = await get_job(running.address, orders["fixed_line"])
    assert fixed.config_changes[0].settings["voice.number"] == "+86138****8000"


async def test_the_adjustment_loop_fixes_what_settings_can_and_falls_out_on_the_rest(
    start_provisioning: Any, fleet: str, bus: Any
) -> None:
    running = await start_provisioning(device_agent_address=fleet)
    await bus.approve("ORD-DT-FIXABLE", "CPE-0009")
    await bus.approve("ORD-DT-DAMAGED", "CPE-0012")
    await bus.approve("ORD-DT-GLITCH", "CPE-0013")

    # Every test kind failed in round 1 and passed after one adjustment.
    await bus.wait_for_event("ORD-DT-FIXABLE", "provisioning.customer_notified", within=60)
    fixed = await get_job(running.address, "ORD-DT-FIXABLE")
    first = [r for r in fixed.test_runs if r.round == 1]
    second = [r for r in fixed.test_runs if r.round == 2]
    assert {r.kind for r in first if not r.passed} == set(
        load_catalogue().get("broadband_install").test_profile.tests  # type: ignore[union-attr]
    )
    assert second and all(r.passed for r in second)
    assert all(r.adjustment for r in first)
    loss = {r.round: r.measurements["loss_pct"] for r in fixed.test_runs if r.kind == "performance"}
    assert loss[1] == 3.0 and loss[2] <= 0.2
    assert [c.operation for c in fixed.config_changes] == ["apply", "adjust"]
    adjust = fixed.config_changes[1]
    assert adjust.settings["fan.speed"] == "high" and adjust.settings["line.profile"] == "robust"
    assert fixed.config_version == adjust.config_version == 3

    # A damaged line: one adjustment (the profile's only one for performance), then the
    # fallout queue (test_fallout.py: a person retries, skips, rolls back or aborts); the device
    # keeps the job's configuration meanwhile and the service is not switched on.
    held = await bus.wait_for_event("ORD-DT-DAMAGED", "provisioning.job_held", within=60)
    assert held.payload.reason_code == "TESTS_FAILED"
    damaged = await get_job(running.address, "ORD-DT-DAMAGED")
    assert damaged.state == pb.JOB_STATE_HELD and damaged.HasField("fallout_since")
    assert "after 1 adjustment" in damaged.detail
    assert [c.operation for c in damaged.config_changes] == ["apply", "adjust"]
    assert [r.measurements["loss_pct"] for r in damaged.test_runs if r.kind == "performance"] == [
        8.0,
        8.0,
    ]
    info = await agent_call(
        fleet, "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(device_id="CPE-0012")
    )
    assert info.info.config_version == damaged.config_version == 3
    assert not info.info.service_active

    # A broken sensor's report is a clear error, never a pass, and nothing is adjusted.
    glitch = await bus.wait_for_event("ORD-DT-GLITCH", "provisioning.job_failed", within=60)
    assert glitch.payload.reason_code == "TEST_RESULT_INVALID"
    assert "temperature_load_c" in glitch.payload.detail
    job = await get_job(running.address, "ORD-DT-GLITCH")
    [bad] = [r for r in job.test_results if not r.passed]
    assert bad.invalid and bad.measurements["temperature_load_c"] == -273.0
    assert [f.problem for f in bad.findings if f.problem] == ["OUT_OF_RANGE"]
    assert "无效" in bad.texts["zh-CN"]
    assert [c.operation for c in job.config_changes] == ["apply", "rollback"]
