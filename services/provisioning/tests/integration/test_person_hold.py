"""A person's hold of the order reaching provisioning over real NATS (order.hold_requested and
order.resume_requested on the ORDER stream, its durable consumer with the inbox), on SQLite and
PostgreSQL, with the peers over gRPC:

- a hold while the job configures the device: the step finishes (never interrupted), its
  configuration kept and told, and the job is held at its next step, PERSON_HOLD, out of the
  fallout queue, with no provisioning.job_held (intake held the order itself); the resume runs
  it from there, CheckFitness first, with no second configuration apply; a redelivered or an
  older hold changes nothing;
- a job that has not started (waiting for its device) is held before touching it;
- past activation the notice waits for the resume;
- a job held for its device and a person runs only once both are lifted, whichever goes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import nats

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.envelope import build_envelope

CLERK = (("authorization", "Bearer dev-clerk"),)
Until = Callable[..., Awaitable[Any]]


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        reply: pb.GetJobResponse = await stub.GetJob(
            pb.GetJobRequest(order_id=order_id), metadata=CLERK
        )
        return reply.job


async def fallout_ids(address: str) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        reply = await stub.ListFallout(pb.ListFalloutRequest(), metadata=CLERK)
        return [e.job.id for e in reply.entries]


async def job_where(
    address: str, order_id: str, until: Until, what: str, test: Callable[[Any], bool]
) -> pb.ProvisioningJob:
    job: pb.ProvisioningJob = await until(lambda: get_job(address, order_id), test, 20, what)
    return job


async def publish_device(
    bus: Any, payload: device_events_pb2.DeviceAbnormal | device_events_pb2.DeviceRecovered
) -> None:
    """As device-monitor's relay would."""
    event_type = (
        "device.abnormal"
        if isinstance(payload, device_events_pb2.DeviceAbnormal)
        else "device.recovered"
    )
    env = build_envelope(
        event_type, payload, producer="device-monitor", device_id=payload.device_id
    )
    await bus.js.publish(
        "orderline." + event_type, env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
    )


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
        condition=device_pb2.DEVICE_CONDITION_ABNORMAL,
    )


def recovered(device_id: str) -> device_events_pb2.DeviceRecovered:
    return device_events_pb2.DeviceRecovered(
        device_id=device_id, condition=device_pb2.DEVICE_CONDITION_HEALTHY
    )


async def device_events_settled(bus: Any, until: Until) -> None:
    await until(
        lambda: bus.js.consumer_info("DEVICE", "provisioning"),
        lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
        20,
        "provisioning to ack every device event",
        retry=lambda exc: isinstance(exc, nats.js.errors.NotFoundError),
    )


async def configure_in_flight(
    bus: Any, peers: Any, order_id: str, device: str, until: Until
) -> asyncio.Event:
    """Approves the order with the agent holding every ApplyConfig until the returned gate is
    set; returns once the job's configure call is in flight."""
    gate = asyncio.Event()
    peers.agent.apply_gate = gate
    await bus.approve(order_id, device)
    await until(
        lambda: asyncio.sleep(0, [k for k in peers.agent.apply_calls if k.endswith(":configure")]),
        lambda calls: len(calls) == 1,
        20,
        "the configure step in flight",
    )
    return gate


async def test_a_hold_mid_step_stops_the_job_at_its_boundary_and_the_resume_does_not_reapply(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0011"
    gate = await configure_in_flight(bus, peers, order_id, device, until)

    hold = await bus.person_hold(order_id, device, 3)
    await bus.approvals_settled()
    # The device call in flight is never interrupted: the job is still at it.
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step) == (pb.JOB_STATE_RUNNING, "configure")
    gate.set()

    job = await job_where(
        provisioning.address,
        order_id,
        until,
        "the job held at its step boundary",
        lambda j: j.state == pb.JOB_STATE_HELD,
    )
    assert (job.step, job.reason) == ("test", "PERSON_HOLD")
    assert "the order is held by clerk-dev (CUSTOMER_REQUEST)" in job.detail
    assert "waits at test until the order is resumed" in job.detail
    assert job.id not in await fallout_ids(provisioning.address)
    # The configuration applied is kept and told; no job_held: intake held the order itself.
    # (The outbox publishes after the commit the job's state shows: wait for the event.)
    await bus.wait_for_event(order_id, "provisioning.device_configured")
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
    ]
    assert peers.agent.tests == [] and not peers.agent.activations
    assert [(c.operation, c.idempotency_key) for c in job.config_changes] == [
        ("apply", f"{job.id}:configure")
    ]

    # The same hold again under another message id (the inbox): nothing changes.
    await bus.person_hold(order_id, device, 3, event_id=hold, msg_id=new_id())
    await bus.approvals_settled()
    assert (await get_job(provisioning.address, order_id)).reason == "PERSON_HOLD"

    fitness_asked = len(peers.health.calls)
    await bus.person_hold(order_id, device, 4, hold=False)
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED and job.reason == ""
    # Resumed from its tests, asking CheckFitness first; the configuration applied once.
    assert len(peers.health.calls) == fitness_asked + 1
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert [e.type for e in await bus.provisioning_events(order_id)][3:] == [
        "provisioning.tests_passed",
        "provisioning.service_activated",
        "provisioning.voucher_issued",
        "provisioning.customer_notified",
    ]

    # The hold the resume lifted, delivered late under a new event id: older, nothing changes.
    before = len(await bus.provisioning_events())
    await bus.person_hold(order_id, device, 3)
    await bus.approvals_settled()
    assert (await get_job(provisioning.address, order_id)).state == pb.JOB_STATE_COMPLETED
    assert len(await bus.provisioning_events()) == before
    assert (await bus.js.stream_info("DEADLETTER")).state.messages == 0


async def test_a_job_not_started_is_held_before_it_touches_the_device(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0012"
    first = order_id + "-1"
    gate = await configure_in_flight(bus, peers, first, device, until)
    # The order's job waits for the device the first job holds: not started.
    await bus.approve(order_id, device)
    await bus.wait_for_event(order_id, "provisioning.job_started")
    waiting = await get_job(provisioning.address, order_id)
    assert (waiting.state, waiting.step) == (pb.JOB_STATE_RUNNING, "prechecks")
    assert waiting.waiting_for_job_id == (await get_job(provisioning.address, first)).id

    await bus.person_hold(order_id, device, 3, reason_code="SITE_NOT_READY")
    job = await job_where(
        provisioning.address,
        order_id,
        until,
        "the job held before it started",
        lambda j: j.state == pb.JOB_STATE_HELD,
    )
    assert (job.step, job.reason) == ("prechecks", "PERSON_HOLD")
    assert "(SITE_NOT_READY)" in job.detail and not job.checklist

    gate.set()
    await bus.wait_for_event(first, "provisioning.customer_notified")
    # The first job's work is all the device saw (its checklist, and its activation asking
    # whether the device still runs its configuration); the held one asked nothing of it.
    assert peers.agent.info_calls == [device, device]
    assert (await get_job(provisioning.address, order_id)).state == pb.JOB_STATE_HELD

    await bus.person_hold(order_id, device, 4, hold=False, reason_code="SITE_READY")
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert peers.agent.applies_by_key[f"{job.id}:configure"] == 1


async def test_past_activation_the_notice_waits_for_the_resume(
    start_provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    provisioning = await start_provisioning(notify_max_attempts=1000)
    device = "CPE-0013"
    # The gateway refuses every send: the job stays at notify, retrying.
    peers.gateway.fail_first = 1_000_000
    await bus.approve(order_id, device)
    await bus.wait_for_event(order_id, "provisioning.service_activated")
    await job_where(
        provisioning.address,
        order_id,
        until,
        "the notice retrying",
        lambda j: j.step == "notify" and j.attempts >= 1,
    )

    await bus.person_hold(order_id, device, 3)
    job = await job_where(
        provisioning.address,
        order_id,
        until,
        "the job held before its notice",
        lambda j: j.state == pb.JOB_STATE_HELD,
    )
    assert (job.step, job.reason) == ("notify", "PERSON_HOLD")
    assert "the service is active; the customer's notice waits" in job.detail
    # Activated already: nothing undone.
    assert job.activation.activation_id and not peers.agent.rollbacks

    peers.gateway.fail_first = 0
    await bus.person_hold(order_id, device, 4, hold=False)
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    assert (await get_job(provisioning.address, order_id)).state == pb.JOB_STATE_COMPLETED


async def test_held_for_its_device_then_a_person_it_runs_once_both_are_lifted(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0014"
    gate = await configure_in_flight(bus, peers, order_id, device, until)
    # While the device is configured, a clerk holds the order and the device overheats.
    await bus.person_hold(order_id, device, 3)
    peers.health.abnormal(device, "ALM-9")
    await publish_device(bus, abnormal(device, "ALM-9"))
    await bus.approvals_settled()
    await device_events_settled(bus, until)
    gate.set()

    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert (held.payload.reason_code, held.payload.alarm_id) == ("DEVICE_ABNORMAL", "ALM-9")
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step, job.reason) == (pb.JOB_STATE_HELD, "test", "DEVICE_ABNORMAL")
    assert job.detail.endswith("; the order is also held by clerk-dev (CUSTOMER_REQUEST)")

    # The device recovers: the job stays held, now for the person.
    peers.health.devices.pop(device)
    await publish_device(bus, recovered(device))
    job = await job_where(
        provisioning.address,
        order_id,
        until,
        "the job held for the person",
        lambda j: j.reason == "PERSON_HOLD",
    )
    assert (job.state, job.step, job.alarm_id) == (pb.JOB_STATE_HELD, "test", "")
    assert peers.agent.tests == []

    await bus.person_hold(order_id, device, 4, hold=False)
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert [e.type for e in await bus.provisioning_events(order_id)].count(
        "provisioning.job_held"
    ) == 1


async def test_held_by_a_person_then_its_device_the_resume_holds_it_for_the_device(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Until
) -> None:
    device = "CPE-0015"
    gate = await configure_in_flight(bus, peers, order_id, device, until)
    await bus.person_hold(order_id, device, 3)
    await bus.approvals_settled()
    gate.set()
    await job_where(
        provisioning.address,
        order_id,
        until,
        "the job held for the person",
        lambda j: j.state == pb.JOB_STATE_HELD,
    )
    # The device overheats while the order is held: the job is held already.
    peers.health.abnormal(device, "ALM-10")
    await publish_device(bus, abnormal(device, "ALM-10"))
    await device_events_settled(bus, until)
    assert (await get_job(provisioning.address, order_id)).reason == "PERSON_HOLD"

    # The clerk resumes: the device holds the job now, and says so (intake holds the order).
    await bus.person_hold(order_id, device, 4, hold=False)
    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert (held.payload.reason_code, held.payload.alarm_id) == ("DEVICE_ABNORMAL", "ALM-10")
    job = await get_job(provisioning.address, order_id)
    assert (job.state, job.step, job.reason) == (pb.JOB_STATE_HELD, "test", "DEVICE_ABNORMAL")
    assert peers.agent.tests == []

    peers.health.devices.pop(device)
    await publish_device(bus, recovered(device))
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
