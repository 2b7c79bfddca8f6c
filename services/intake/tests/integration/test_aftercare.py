"""The communication log, follow-ups and trouble cases over real gRPC, with real NATS and both
databases: every new RPC's success and error paths. The service's clock is moved by the test
(follow-ups fall due days after completion), never waited for."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from orderline.events.v1 import provisioning_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings

from .test_review_amend_hold import (
    CLERK,
    ENGINEER,
    PRINCIPALS,
    REVIEWER,
    create,
    create_request,
    details,
    get,
    publish,
)

S = order_pb2
MAINTENANCE = (("authorization", "Bearer t-maint"),)
Stub = order_pb2_grpc.OrderServiceStub


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def move(self, by: timedelta) -> None:
        self.offset += by


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def intake(
    db_url: str, nats_server: NatsServer, tmp_path: Path, clock: MovableClock
) -> AsyncIterator[Stub]:
    tokens = tmp_path / "tokens.json"
    principals = {**PRINCIPALS, "t-maint": ("maint.wu", ["maintenance"])}
    tokens.write_text(
        json.dumps({t: {"subject": s, "roles": r} for t, (s, r) in principals.items()})
    )
    settings = IntakeSettings(
        service_name="intake",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_server.url,
        trace_dir=tmp_path / "traces",
        auth_tokens_file=tokens,
    )
    async with (
        serving(build(settings, clock=clock)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield order_pb2_grpc.OrderServiceStub(channel)


async def completed(stub: Stub, url: str, request_id: str) -> order_pb2.Order:
    order = await create(stub, create_request(request_id))
    await publish(
        url,
        "provisioning.service_activated",
        provisioning_events_pb2.ServiceActivated(order_id=order.id),
        order.id,
    )
    await publish(
        url,
        "provisioning.customer_notified",
        provisioning_events_pb2.CustomerNotified(
            order_id=order.id, channel="sms", delivery_id="DLV-9"
        ),
        order.id,
    )

    async def current() -> order_pb2.Order:
        return await get(stub, order.id)

    return await eventually(
        current, lambda o: o.state == S.ORDER_STATE_COMPLETED, 15, f"{order.id} completed"
    )


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value


async def test_the_log_holds_calls_notes_and_provisioning_notices_oldest_first(
    intake: Stub, nats_server: NatsServer
) -> None:
    done = await completed(intake, nats_server.url, "c1")
    added = (
        await intake.AddCommunication(
            S.AddCommunicationRequest(
                order_id=done.id,
                channel=S.COMMUNICATION_CHANNEL_CALL,
                direction=S.COMMUNICATION_DIRECTION_INBOUND,
                text="customer asks for a call back on +8613912345678",
            ),
            metadata=CLERK,
        )
    ).communication
    assert added.actor == "clerk.zhang" and "+86139****5678" in added.text
    assert "13912345678" not in added.text

    first = await intake.ListCommunications(
        S.ListCommunicationsRequest(order_id=done.id, page_size=1), metadata=REVIEWER
    )
    [notice] = first.communications
    assert (notice.channel, notice.direction, notice.actor, notice.delivery_id) == (
        S.COMMUNICATION_CHANNEL_SMS,
        S.COMMUNICATION_DIRECTION_OUTBOUND,
        "provisioning",
        "DLV-9",
    )
    rest = await intake.ListCommunications(
        S.ListCommunicationsRequest(
            order_id=done.id, page_size=1, page_token=first.next_page_token
        ),
        metadata=CLERK,
    )
    assert [c.id for c in rest.communications] == [added.id]


async def test_a_bad_log_entry_is_refused_field_by_field(intake: Stub) -> None:
    err = await refused(
        intake.AddCommunication(
            S.AddCommunicationRequest(order_id="x" * 40, text=" "), metadata=CLERK
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = details(err)[1]
    assert set(fields) == {"order_id", "channel", "direction", "text"}
    assert all(" | " in d for d in fields.values())
    missing = await refused(
        intake.AddCommunication(
            S.AddCommunicationRequest(
                order_id="no-such",
                channel=S.COMMUNICATION_CHANNEL_NOTE,
                direction=S.COMMUNICATION_DIRECTION_INBOUND,
                text="hello",
            ),
            metadata=CLERK,
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    listed = await refused(
        intake.ListCommunications(S.ListCommunicationsRequest(order_id="no-such"), metadata=CLERK)
    )
    assert listed.code() == grpc.StatusCode.NOT_FOUND
    bad_page = await refused(
        intake.ListCommunications(
            S.ListCommunicationsRequest(order_id="", page_token="junk", page_size=-1),
            metadata=CLERK,
        )
    )
    assert set(details(bad_page)[1]) == {"order_id", "page_token", "page_size"}
    role = await refused(
        intake.AddCommunication(S.AddCommunicationRequest(order_id="x"), metadata=REVIEWER)
    )
    assert role.code() == grpc.StatusCode.PERMISSION_DENIED
    role = await refused(
        intake.ListCommunications(S.ListCommunicationsRequest(order_id="x"), metadata=ENGINEER)
    )
    assert role.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_follow_ups_fall_due_a_problem_opens_a_case_and_the_case_closes(
    intake: Stub, nats_server: NatsServer, clock: MovableClock
) -> None:
    done = await completed(intake, nats_server.url, "f1")
    listed = await intake.ListFollowUps(S.ListFollowUpsRequest(order_id=done.id), metadata=CLERK)
    assert [f.day for f in listed.follow_ups] == [7, 30]
    assert not any(f.overdue for f in listed.follow_ups)
    overdue = await intake.ListFollowUps(S.ListFollowUpsRequest(overdue=True), metadata=CLERK)
    assert done.id not in {f.order_id for f in overdue.follow_ups}

    clock.move(timedelta(days=8))
    overdue = await intake.ListFollowUps(
        S.ListFollowUpsRequest(order_id=done.id, overdue=True), metadata=CLERK
    )
    [week] = overdue.follow_ups
    assert week.day == 7 and week.overdue

    recorded = await intake.RecordFollowUp(
        S.RecordFollowUpRequest(
            follow_up_id=week.id,
            outcome=S.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED,
            note="picture freezes every evening",
            device_problem=True,
        ),
        metadata=CLERK,
    )
    case = recorded.trouble_case
    assert recorded.follow_up.outcome == S.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED
    assert recorded.follow_up.case_id == case.id and not recorded.follow_up.overdue
    assert (case.order_id, case.state, case.device_problem) == (done.id, S.CASE_STATE_OPEN, True)
    again = await refused(
        intake.RecordFollowUp(
            S.RecordFollowUpRequest(follow_up_id=week.id, outcome=S.FOLLOW_UP_OUTCOME_SATISFIED),
            metadata=CLERK,
        )
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(again)[0] == "FOLLOW_UP_RECORDED"
    assert not (
        await intake.ListFollowUps(
            S.ListFollowUpsRequest(order_id=done.id, overdue=True), metadata=CLERK
        )
    ).follow_ups

    cases = await intake.ListCases(
        S.ListCasesRequest(order_id=done.id, state=S.CASE_STATE_OPEN), metadata=ENGINEER
    )
    assert [c.id for c in cases.cases] == [case.id]
    closed = (
        await intake.CloseCase(
            S.CloseCaseRequest(case_id=case.id, resolution="firmware updated"),
            metadata=MAINTENANCE,
        )
    ).trouble_case
    assert (closed.state, closed.closed_by) == (S.CASE_STATE_CLOSED, "maint.wu")
    twice = await refused(
        intake.CloseCase(S.CloseCaseRequest(case_id=case.id, resolution="x"), metadata=CLERK)
    )
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not (
        await intake.ListCases(
            S.ListCasesRequest(order_id=done.id, state=S.CASE_STATE_OPEN), metadata=CLERK
        )
    ).cases


async def test_follow_up_and_case_refusals(intake: Stub) -> None:
    bad = await refused(
        intake.RecordFollowUp(S.RecordFollowUpRequest(device_problem=True), metadata=CLERK)
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details(bad)[1]) == {"follow_up_id", "outcome", "device_problem"}
    missing = await refused(
        intake.RecordFollowUp(
            S.RecordFollowUpRequest(follow_up_id="no-such", outcome=S.FOLLOW_UP_OUTCOME_SATISFIED),
            metadata=CLERK,
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    role = await refused(
        intake.RecordFollowUp(S.RecordFollowUpRequest(follow_up_id="x"), metadata=REVIEWER)
    )
    assert role.code() == grpc.StatusCode.PERMISSION_DENIED

    listed = await refused(
        intake.ListFollowUps(S.ListFollowUpsRequest(order_id="no-such"), metadata=CLERK)
    )
    assert listed.code() == grpc.StatusCode.NOT_FOUND
    page = await refused(
        intake.ListFollowUps(S.ListFollowUpsRequest(page_token="junk"), metadata=CLERK)
    )
    assert set(details(page)[1]) == {"page_token"}

    cases = await refused(
        intake.ListCases(S.ListCasesRequest(state=7, page_size=501), metadata=CLERK)  # type: ignore[arg-type]
    )
    assert set(details(cases)[1]) == {"state", "page_size"}
    close = await refused(intake.CloseCase(S.CloseCaseRequest(), metadata=CLERK))
    assert set(details(close)[1]) == {"case_id", "resolution"}
    gone = await refused(
        intake.CloseCase(S.CloseCaseRequest(case_id="no-such", resolution="done"), metadata=CLERK)
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    role = await refused(
        intake.CloseCase(S.CloseCaseRequest(case_id="x", resolution="y"), metadata=ENGINEER)
    )
    assert role.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_clerks_call_and_an_unreachable_customer_reach_the_log(
    intake: Stub, nats_server: NatsServer
) -> None:
    """Provisioning's word about the customer lands in the order's log: the confirmation and
    the feedback the clerk recorded after the call, and the task to call a customer whose
    notice never arrived (the order held with it)."""
    done = await completed(intake, nats_server.url, "c-call")
    P = provisioning_events_pb2
    await publish(
        nats_server.url,
        "provisioning.activation_confirmed",
        P.ActivationConfirmed(order_id=done.id, channel="call", confirmed_by="clerk.zhang"),
        done.id,
    )
    await publish(
        nats_server.url,
        "provisioning.feedback_recorded",
        P.FeedbackRecorded(
            order_id=done.id,
            score=4,
            comment="fast, call me on 13912345678",
            channel="call",
            recorded_by="clerk.zhang",
        ),
        done.id,
    )

    async def log_of(order_id: str) -> list[order_pb2.Communication]:
        reply = await intake.ListCommunications(
            S.ListCommunicationsRequest(order_id=order_id), metadata=CLERK
        )
        return list(reply.communications)

    entries = await eventually(
        lambda: log_of(done.id), lambda e: len(e) == 3, 15, "confirmation and feedback logged"
    )
    confirmed, feedback = entries[1], entries[2]
    assert (confirmed.channel, confirmed.direction, confirmed.actor) == (
        S.COMMUNICATION_CHANNEL_CALL,
        S.COMMUNICATION_DIRECTION_INBOUND,
        "clerk.zhang",
    )
    assert confirmed.text.startswith("customer confirmed the service works")
    assert "客户确认服务已正常开通" in confirmed.text
    assert feedback.text.startswith("customer feedback 4/5: fast, call me on 139****5678")
    assert "13912345678" not in feedback.text

    # A customer provisioning could not reach: the order is held and the clerk has a task.
    waiting = await create(intake, create_request("c-unreached"))
    await publish(
        nats_server.url,
        "provisioning.job_held",
        P.JobHeld(
            order_id=waiting.id,
            job_id="J-1",
            reason_code="CUSTOMER_NOT_REACHED",
            detail="no delivery after 10 attempts",
            channel="voice",
            attempts=10,
        ),
        waiting.id,
    )
    held = await eventually(
        lambda: get(intake, waiting.id), lambda o: o.state == S.ORDER_STATE_HELD, 15, "held"
    )
    assert held.state_reason == "CUSTOMER_NOT_REACHED"
    (task,) = [e for e in await log_of(waiting.id) if "not reached" in e.text]
    assert (task.channel, task.direction, task.actor) == (
        S.COMMUNICATION_CHANNEL_CALL,
        S.COMMUNICATION_DIRECTION_OUTBOUND,
        "provisioning",
    )
    assert "10 attempts, the last by automated voice call" in task.text
    assert "未能联系到客户" in task.text
