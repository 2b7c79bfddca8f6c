"""Cancellation of a job through NATS and gRPC: the step in flight finishes, the device is
rolled back to the version before the job and its reservation released; a job that never
touched the device ends at once; past activation the request is declined."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc

CLERK = (("authorization", "Bearer dev-clerk"),)


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return (await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)).job


async def test_a_job_cancelled_mid_step_finishes_the_step_then_rolls_the_device_back(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Any
) -> None:
    gate = asyncio.Event()
    peers.agent.apply_gate = gate
    await bus.approve(order_id, "CPE-0007")

    async def applies() -> list[str]:
        return list(peers.agent.apply_calls)

    await until(applies, within=20, what="the configure step in flight")

    # The request arrives while the apply is in flight: the worker holds the job.
    await bus.cancel(order_id, "CPE-0007", "CAN-1")
    await bus.approvals_settled()
    gate.set()

    done = await bus.wait_for_event(order_id, "provisioning.cancellation_completed")
    events = [e.type for e in await bus.provisioning_events(order_id)]
    assert events == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.cancellation_accepted",
        "provisioning.cancellation_completed",
    ]
    job = await get_job(provisioning.address, order_id)
    assert done.payload.cancellation_id == "CAN-1" and done.payload.job_id == job.id
    assert done.payload.rolled_back and done.payload.rolled_back_to == 1
    assert done.payload.compensation == "ROLLED_BACK"
    # The device is back at the version it had before the job; no test ran on it.
    assert peers.agent.versions["CPE-0007"] == 1
    assert peers.agent.rollbacks == [("CPE-0007", f"{job.id}:rollback", 1)]
    assert not peers.agent.tests and not peers.agent.activations
    assert job.state == pb.JOB_STATE_CANCELLED and job.step == "cancel"
    assert [(c.operation, c.previous_version, c.config_version) for c in job.config_changes] == [
        ("apply", 1, 2),
        ("rollback", 2, 1),
    ]
    c = job.cancellation
    assert (c.cancellation_id, c.reason_code, c.state) == ("CAN-1", "CUSTOMER_REQUEST", "cancelled")
    assert c.rolled_back and c.rolled_back_to == 1 and c.decided_at.seconds > 0
    assert "rolled back to version 1" in c.detail

    # The reservation is released: the next order for the device runs.
    peers.agent.apply_gate = None
    await bus.approve(order_id + "-2", "CPE-0007")
    await bus.wait_for_event(order_id + "-2", "provisioning.customer_notified")


async def test_a_job_held_before_touching_the_device_is_cancelled_at_once(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    peers.health.abnormal("CPE-0008", "ALM-1")
    await bus.approve(order_id, "CPE-0008")
    await bus.wait_for_event(order_id, "provisioning.job_held")
    await bus.cancel(order_id, "CPE-0008", "CAN-2")

    done = await bus.wait_for_event(order_id, "provisioning.cancellation_completed")
    assert not done.payload.rolled_back and done.payload.compensation == "NOTHING_TO_UNDO"
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_CANCELLED and job.cancellation.state == "cancelled"
    assert not peers.agent.apply_calls and not peers.agent.rollbacks
    # A redelivered or repeated request changes nothing.
    await bus.cancel(order_id, "CPE-0008", "CAN-2")
    await bus.approvals_settled()
    completed = [
        e
        for e in await bus.provisioning_events(order_id)
        if e.type == "provisioning.cancellation_completed"
    ]
    assert len(completed) == 1


async def test_a_cancellation_before_the_approval_arrives_keeps_the_job_from_starting(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    await bus.cancel(order_id, "CPE-0009", "CAN-3")
    await bus.wait_for_event(order_id, "provisioning.cancellation_completed")
    await bus.approve(order_id, "CPE-0009")
    await bus.approvals_settled()
    events = [e.type for e in await bus.provisioning_events(order_id)]
    assert events == ["provisioning.cancellation_completed"]
    assert not peers.agent.apply_calls
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_CANCELLED


async def test_a_cancellation_past_activation_is_declined(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    await bus.approve(order_id, "CPE-0010")
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    await bus.cancel(order_id, "CPE-0010", "CAN-4")
    declined = await bus.wait_for_event(order_id, "provisioning.cancellation_declined")
    assert declined.payload.reason_code == "SERVICE_ALREADY_ACTIVATED"
    assert declined.payload.cancellation_id == "CAN-4"
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert job.cancellation.state == "declined"
    assert not peers.agent.rollbacks
