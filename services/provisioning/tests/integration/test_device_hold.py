"""device-monitor's word on a device reaching provisioning over real NATS (DEVICE stream, a
durable consumer with its inbox), on SQLite and PostgreSQL, with the peers over gRPC:

- device.abnormal while a job configures the device: the configure step completes and the job
  is held at its next step (the step boundary), DEVICE_ABNORMAL naming the alarm, out of the
  fallout queue, and provisioning.job_held tells intake;
- device.recovered resumes it from that step: CheckFitness first (still abnormal: held again,
  nothing run on the device), then the rest, with no second configuration apply;
- a job retrying a device step while no worker holds it is held at once;
- a recovered event for a device with no held job, a duplicate and an older event redelivered
  late change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.envelope import build_envelope

ENGINEER = (("authorization", "Bearer dev-engineer"),)
Until = Callable[..., Awaitable[Any]]


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return (await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=ENGINEER)).job


async def fallout_ids(address: str) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        reply = await stub.ListFallout(pb.ListFalloutRequest(), metadata=ENGINEER)
        return [e.job.id for e in reply.entries]


async def publish(
    bus: Any,
    payload: device_events_pb2.DeviceAbnormal | device_events_pb2.DeviceRecovered,
    *,
    at: datetime | None = None,
    event_id: str | None = None,
    msg_id: str | None = None,
) -> str:
    """Publishes the event as device-monitor's relay would; returns its event id."""
    event_type = (
        "device.abnormal"
        if isinstance(payload, device_events_pb2.DeviceAbnormal)
        else "device.recovered"
    )
    env = build_envelope(
        event_type,
        payload,
        producer="device-monitor",
        device_id=payload.device_id,
        event_id=event_id,
        now=at,
    )
    await bus.js.publish(
        "orderline." + event_type,
        env.SerializeToString(),
        headers={"Nats-Msg-Id": msg_id or env.id},
    )
    return env.id


def abnormal(device_id: str, alarm_id: str) -> device_events_pb2.DeviceAbnormal:
    return device_events_pb2.DeviceAbnormal(
        device_id=device_id,
        alarms=[
            device_events_pb2.BlockingAlarm(
                alarm_id=alarm_id,
                category=device_pb2.HEALTH_CATEGORY_THERMAL,
                perceived_severity=device_pb2.PERCEIVED_SEVERITY_CRITICAL,
            )
        ],
        perceived_severity=device_pb2.PERCEIVED_SEVERITY_CRITICAL,
        rules_version="2026.12.06-1",
        condition=device_pb2.DEVICE_CONDITION_ABNORMAL,
    )


def recovered(device_id: str) -> device_events_pb2.DeviceRecovered:
    return device_events_pb2.DeviceRecovered(
        device_id=device_id,
        rules_version="2026.12.06-1",
        condition=device_pb2.DEVICE_CONDITION_HEALTHY,
    )


async def device_events_settled(bus: Any, until: Until) -> None:
    """Provisioning has acked every DEVICE event."""
    await until(
        lambda: bus.js.consumer_info("DEVICE", "provisioning"),
        lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
        20,
        "provisioning to ack every device event",
        retry=lambda exc: isinstance(exc, nats.js.errors.NotFoundError),
    )


async def test_abnormal_mid_step_holds_at_the_boundary_and_recovery_resumes_without_reapplying(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0007"
    gate = asyncio.Event()
    peers.agent.apply_gate = gate
    await bus.approve(order_id, device)
    await until(
        lambda: asyncio.sleep(0, peers.agent.apply_calls),
        lambda calls: len(calls) == 1,
        20,
        "the configure step in flight",
    )
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step) == (pb.JOB_STATE_RUNNING, "configure")

    # The device overheats while it is being configured.
    peers.health.abnormal(device, "ALM-1")
    await publish(bus, abnormal(device, "ALM-1"))
    await device_events_settled(bus, until)
    # Not held yet: the step is in flight (a worker holds it).
    assert (await get_job(provisioning.address, order_id)).state == pb.JOB_STATE_RUNNING
    gate.set()

    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert (held.payload.reason_code, held.payload.alarm_id) == ("DEVICE_ABNORMAL", "ALM-1")
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        pb.JOB_STATE_HELD,
        "test",
        "DEVICE_ABNORMAL",
        "ALM-1",
    )
    assert "thermal alarm ALM-1 (critical)" in job.detail
    assert job.id not in await fallout_ids(provisioning.address)
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.job_held",
    ]
    assert peers.agent.tests == []

    # device.recovered, but device-monitor says abnormal again when asked: held again at the
    # same step, nothing run on the device.
    await publish(bus, recovered(device))
    await until(
        lambda: bus.provisioning_events(order_id),
        lambda events: [e.type for e in events].count("provisioning.job_held") == 2,
        20,
        "the job held again after asking CheckFitness",
    )
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step, job.reason) == (pb.JOB_STATE_HELD, "test", "DEVICE_ABNORMAL")
    assert peers.agent.tests == []

    # Really recovered: the job goes on from its tests to completion.
    peers.health.devices.pop(device)
    last = await publish(bus, recovered(device))
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED and job.reason == ""
    types = [e.type for e in await bus.provisioning_events(order_id)]
    assert types[4:] == [
        "provisioning.job_held",
        "provisioning.tests_passed",
        "provisioning.service_activated",
        "provisioning.voucher_issued",
        "provisioning.customer_notified",
    ]
    # One configuration apply; each test ran once under its first-round key.
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert sorted(k for _, _, k in peers.agent.tests) == sorted(
        f"{job.id}:test:{r.kind}" for r in job.test_results
    )

    # The same event again under another message id (past JetStream's duplicate window: the
    # inbox), an older abnormal redelivered late, and a recovery of a device with no held
    # job: nothing changes, nothing is dead-lettered.
    before = len(await bus.provisioning_events())
    await publish(bus, recovered(device), event_id=last, msg_id=new_id())
    await publish(
        bus,
        abnormal(device, "ALM-OLD"),
        at=datetime.now(UTC) - timedelta(hours=1),
    )
    await publish(bus, recovered("CPE-0099"))
    await device_events_settled(bus, until)
    assert len(await bus.provisioning_events()) == before
    assert (await get_job(provisioning.address, order_id)).state == pb.JOB_STATE_COMPLETED
    info = await bus.js.stream_info("DEADLETTER")
    assert info.state.messages == 0


async def test_a_job_retrying_a_device_step_is_held_at_once_and_resumes(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0008"
    # The agent busy: the configure step retries with backoff, mostly with no worker on it.
    peers.agent.unavailable_applies = 10_000
    await bus.approve(order_id, device)
    await bus.wait_for_event(order_id, "provisioning.job_started")
    await until(
        lambda: get_job(provisioning.address, order_id),
        lambda job: job.step == "configure" and job.attempts >= 1,
        20,
        "configure retrying",
    )
    peers.health.abnormal(device, "ALM-2")
    await publish(bus, abnormal(device, "ALM-2"))
    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert (held.payload.reason_code, held.payload.alarm_id) == ("DEVICE_ABNORMAL", "ALM-2")
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step) == (pb.JOB_STATE_HELD, "configure")
    assert peers.agent.applies_by_key == {}

    peers.agent.unavailable_applies = 0
    peers.health.devices.pop(device)
    await publish(bus, recovered(device))
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
