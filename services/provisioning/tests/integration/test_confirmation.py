"""The customer's notice waits for its delivery report, and the clerk records the customer's
confirmation and feedback: through real gRPC, real NATS, on SQLite and PostgreSQL.

- a message the gateway reports undelivered is sent again under a new key; after the bounded
  attempts the job waits for the clerk in the fallout queue (CUSTOMER_NOT_REACHED), and an
  engineer's retry gives it a fresh round that reaches the customer;
- ConfirmActivation and RecordFeedback once per order on a completed job: the same call again
  returns the same record, a different one is ALREADY_EXISTS; each publishes its event once;
- bad input (score 0 or 6, a comment of 501 characters, no channel, an unknown order, a job
  that has not completed) is refused and writes nothing.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc


def bearer(role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer dev-{role}"),)


CLERK, ENGINEER = bearer("clerk"), bearer("engineer")


async def call(address: str, method: str, request: Any, who: Any = CLERK) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return await getattr(stub, method)(request, metadata=who)


async def refused(
    address: str, method: str, request: Any, who: Any = CLERK
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(address, method, request, who)
    return exc.value


def field_violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return sorted(fields)


async def job_of(address: str, order_id: str) -> pb.ProvisioningJob:
    return (await call(address, "GetJob", pb.GetJobRequest(order_id=order_id))).job


async def test_an_undelivered_notice_is_sent_again_then_the_clerk_confirms_and_records_feedback(
    start_provisioning: Any, bus: Any, peers: Any, order_id: str, until: Any
) -> None:
    service = await start_provisioning()
    peers.gateway.undeliverable_first = 2
    await bus.approve(order_id, "CPE-0001")
    notified = await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await job_of(service.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    # Two messages reported undelivered, each followed by a new one under a new key.
    assert [s.idempotency_key for s in peers.gateway.sends] == [
        f"{job.id}:notify",
        f"{job.id}:notify:1",
        f"{job.id}:notify:2",
    ]
    assert notified.payload.delivery_id == peers.gateway.deliveries[f"{job.id}:notify:2"]
    assert not job.HasField("confirmation") and not job.HasField("feedback")

    # The clerk confirms, by order id; the same call again returns the same record.
    first = (
        await call(
            service.address,
            "ConfirmActivation",
            pb.ConfirmActivationRequest(order_id=order_id, channel=pb.CUSTOMER_CHANNEL_CALL),
        )
    ).confirmation
    assert (first.job_id, first.order_id, first.confirmed_by) == (job.id, order_id, "clerk-dev")
    again = (
        await call(
            service.address,
            "ConfirmActivation",
            pb.ConfirmActivationRequest(job_id=job.id, channel=pb.CUSTOMER_CHANNEL_CALL),
        )
    ).confirmation
    assert again == first
    other = await refused(
        service.address,
        "ConfirmActivation",
        pb.ConfirmActivationRequest(order_id=order_id, channel=pb.CUSTOMER_CHANNEL_VISIT),
    )
    assert other.code() == grpc.StatusCode.ALREADY_EXISTS and "ALREADY_CONFIRMED" in str(
        rpc_status.from_call(other)  # type: ignore[arg-type]
    )

    feedback = pb.RecordFeedbackRequest(
        order_id=order_id,
        score=5,
        comment="装得很快 call back on 13800138000",
        channel=pb.CUSTOMER_CHANNEL_CALL,
    )
    recorded = (await call(service.address, "RecordFeedback", feedback)).feedback
    assert recorded.score == 5 and "13800138000" not in recorded.comment
    assert (await call(service.address, "RecordFeedback", feedback)).feedback == recorded
    changed = pb.RecordFeedbackRequest()
    changed.CopyFrom(feedback)
    changed.score = 2
    err = await refused(service.address, "RecordFeedback", changed)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS

    # Only the clerk who talked to the customer records these.
    err = await refused(service.address, "RecordFeedback", feedback, ENGINEER)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    job = await job_of(service.address, order_id)
    assert job.confirmation == first and job.feedback == recorded
    await bus.wait_for_event(order_id, "provisioning.feedback_recorded")
    events = await bus.provisioning_events(order_id)
    confirmed = [e for e in events if e.type == "provisioning.activation_confirmed"]
    scored = [e for e in events if e.type == "provisioning.feedback_recorded"]
    assert len(confirmed) == 1 and len(scored) == 1
    assert (confirmed[0].payload.channel, confirmed[0].payload.confirmed_by) == (
        "call",
        "clerk-dev",
    )
    assert confirmed[0].payload.business_type == "broadband_install"
    assert (scored[0].payload.score, scored[0].payload.channel) == (5, "call")
    assert scored[0].payload.comment == recorded.comment


async def test_a_customer_never_reached_waits_for_the_clerk_and_bad_input_writes_nothing(
    start_provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    service = await start_provisioning(notify_max_attempts=3)
    peers.gateway.undeliverable_first = 1000
    await bus.approve(order_id, "CPE-0002")
    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert held.payload.reason_code == "CUSTOMER_NOT_REACHED"
    assert (held.payload.attempts, held.payload.channel) == (3, "sms")
    assert "customer not reached after 3 attempts" in held.payload.detail
    job = await job_of(service.address, order_id)
    assert (job.state, job.step, job.reason) == (
        pb.JOB_STATE_HELD,
        "notify",
        "CUSTOMER_NOT_REACHED",
    )
    assert len(peers.gateway.sends) == 3  # bounded: nothing more is sent
    queue = (await call(service.address, "ListFallout", pb.ListFalloutRequest())).entries
    [entry] = [e for e in queue if e.job.order_id == order_id]
    assert entry.reason == "CUSTOMER_NOT_REACHED" and entry.texts["en"] == "customer not reached"
    assert "retry" in entry.actions

    # A job that has not completed: refused naming its state; nothing written.
    call_, sms = pb.CUSTOMER_CHANNEL_CALL, pb.CUSTOMER_CHANNEL_SMS
    for method, request in (
        ("ConfirmActivation", pb.ConfirmActivationRequest(order_id=order_id, channel=call_)),
        ("RecordFeedback", pb.RecordFeedbackRequest(order_id=order_id, score=3, channel=sms)),
    ):
        err = await refused(service.address, method, request)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "held at notify (CUSTOMER_NOT_REACHED)" in (err.details() or "")
    # Bad input: INVALID_ARGUMENT naming every bad field.
    feedback = pb.RecordFeedbackRequest
    cases = [
        (feedback(order_id=order_id, score=0, channel=call_), ["score"]),
        (feedback(order_id=order_id, score=6, channel=call_), ["score"]),
        (feedback(order_id=order_id, score=5, comment="x" * 501, channel=call_), ["comment"]),
        (feedback(score=9), ["channel", "order_id", "score"]),
        (feedback(order_id=order_id, job_id=job.id, score=5, channel=call_), ["order_id"]),
    ]
    for request, fields in cases:
        err = await refused(service.address, "RecordFeedback", request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(err) == fields
    err = await refused(
        service.address, "ConfirmActivation", pb.ConfirmActivationRequest(order_id=order_id)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(err) == ["channel"]
    err = await refused(
        service.address,
        "ConfirmActivation",
        pb.ConfirmActivationRequest(order_id="ORD-UNKNOWN", channel=pb.CUSTOMER_CHANNEL_CALL),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    job = await job_of(service.address, order_id)
    assert not job.HasField("confirmation") and not job.HasField("feedback")
    types = {e.type for e in await bus.provisioning_events(order_id)}
    assert not types & {"provisioning.activation_confirmed", "provisioning.feedback_recorded"}

    # The engineer retries once the customer can be reached: a fresh round, new keys.
    peers.gateway.undeliverable_first = 0
    await call(service.address, "RetryJob", pb.RetryJobRequest(job_id=job.id), ENGINEER)
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await job_of(service.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert peers.gateway.sends[-1].idempotency_key == f"{job.id}:notify:retry1"
