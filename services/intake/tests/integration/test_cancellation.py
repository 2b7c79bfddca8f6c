"""Cancellation over real gRPC, with real NATS and both databases: the request, its states,
provisioning's answers as events, and every refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.events.v1 import order_events_pb2, provisioning_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings
from orderline_runtime.messaging.envelope import build_envelope, parse_envelope

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PRINCIPALS = {
    "t-clerk": ("clerk.zhang", ["clerk"]),
    "t-rev": ("reviewer.li", ["reviewer"]),
}
CLERK = (("authorization", "Bearer t-clerk"),)
REVIEWER = (("authorization", "Bearer t-rev"),)
S = order_pb2
P = provisioning_events_pb2


def create_request(request_id: str, **overrides: Any) -> order_pb2.CreateOrderRequest:
    fields: dict[str, Any] = {
        "client_request_id": request_id,
        "business_type": "broadband_install",
        "customer": order_pb2.Customer(
            name="李娜",
            phone="+8613912345678",
            identity=order_pb2.Identity(resident_id="11010519491231002X"),
            address=f"上海市浦东新区世纪大道100号{request_id}室",
            locale="zh-CN",
        ),
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
        "documents": [order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=183_211)],
    }
    fields.update(overrides)
    return order_pb2.CreateOrderRequest(**fields)


@pytest.fixture
async def intake(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[order_pb2_grpc.OrderServiceStub]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({t: {"subject": s, "roles": r} for t, (s, r) in PRINCIPALS.items()})
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
        serving(build(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield order_pb2_grpc.OrderServiceStub(channel)


async def publish(url: str, event_type: str, payload: Message, order_id: str) -> None:
    env = build_envelope(event_type, payload, producer="provisioning", order_id=order_id)
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(
            f"orderline.{event_type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )
    finally:
        await nc.close()


async def get(stub: order_pb2_grpc.OrderServiceStub, order_id: str) -> order_pb2.Order:
    return (await stub.GetOrder(S.GetOrderRequest(order_id=order_id), metadata=CLERK)).order


async def wait_for(
    stub: order_pb2_grpc.OrderServiceStub, order_id: str, state: int
) -> order_pb2.Order:
    async def current() -> order_pb2.Order:
        return await get(stub, order_id)

    return await eventually(current, lambda o: o.state == state, 15, f"{order_id} to be {state}")


def details(err: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    status = rpc_status.from_call(err)
    assert status is not None
    reason, fields = "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return reason, fields


async def cancel(
    stub: order_pb2_grpc.OrderServiceStub,
    order_id: str,
    request_id: str,
    reason: str = "CUSTOMER_REQUEST",
) -> order_pb2.CancelOrderResponse:
    return await stub.CancelOrder(  # type: ignore[no-any-return]
        S.CancelOrderRequest(client_request_id=request_id, order_id=order_id, reason_code=reason),
        metadata=CLERK,
    )


def steps(order: order_pb2.Order) -> list[tuple[int, int, str, str]]:
    return [(c.from_state, c.to_state, c.actor, c.reason_code) for c in order.history]


async def test_an_order_never_approved_is_cancelled_at_once(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    pending = (await intake.CreateOrder(create_request("c1", documents=[]), metadata=CLERK)).order
    assert pending.state == S.ORDER_STATE_PENDING

    reply = await cancel(intake, pending.id, "cancel-c1")
    assert reply.created
    assert reply.order.state == S.ORDER_STATE_CANCELLED
    c = reply.cancellation
    assert c.state == S.CANCELLATION_STATE_DONE and c.order_id == pending.id
    assert c.requested_by == "clerk.zhang" and c.reason_code == "CUSTOMER_REQUEST"
    assert not c.rolled_back and c.decided_at.seconds > 0 and " | " in c.detail
    # The request and its outcome are on the order's history, with actor and reason.
    assert steps(reply.order)[-3:] == [
        (S.ORDER_STATE_PENDING, S.ORDER_STATE_ASSESSING_CANCELLATION, "clerk.zhang",
         "CUSTOMER_REQUEST"),
        (S.ORDER_STATE_ASSESSING_CANCELLATION, S.ORDER_STATE_PENDING_CANCELLATION,
         "clerk.zhang", "NO_PROVISIONING_STARTED"),
        (S.ORDER_STATE_PENDING_CANCELLATION, S.ORDER_STATE_CANCELLED, "clerk.zhang",
         "NO_PROVISIONING_STARTED"),
    ]  # fmt: skip

    got = await intake.GetCancellation(
        S.GetCancellationRequest(cancellation_id=c.id), metadata=REVIEWER
    )
    assert got.cancellation == c
    listed = await intake.ListCancellations(
        S.ListCancellationsRequest(order_id=pending.id), metadata=CLERK
    )
    assert [x.id for x in listed.cancellations] == [c.id]

    # Cancelled is final.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await cancel(intake, pending.id, "cancel-c1-again")
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(again.value)[0] == "INVALID_TRANSITION"


async def test_an_order_in_provisioning_is_cancelled_when_provisioning_has_rolled_back(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request("c2"), metadata=CLERK)).order
    assert order.state == S.ORDER_STATE_IN_PROGRESS
    await publish(
        nats_server.url,
        "provisioning.device_configured",
        P.DeviceConfigured(job_id="j2", order_id=order.id, device_id="CPE-0001", config_version=4),
        order.id,
    )
    await eventually(
        lambda: get(intake, order.id),
        lambda o: any(m.name == "device_configured" for m in o.milestones),
        15,
        "the device_configured milestone",
    )

    # Provisioning is asked through order.cancellation_requested.
    nc = await nats.connect(nats_server.url)
    asked = await nc.subscribe("orderline.order.cancellation_requested")
    try:
        reply = await cancel(intake, order.id, "cancel-c2", "CUSTOMER_WITHDREW")
        message = await asked.next_msg(timeout=15)
    finally:
        await nc.close()
    event = parse_envelope(message.data, message.subject)
    request = event.payload(order_events_pb2.OrderCancellationRequested)
    c = reply.cancellation
    assert request.cancellation_id == c.id and request.order_id == order.id
    assert request.reason_code == "CUSTOMER_WITHDREW" and request.device_id == "CPE-0001"
    assert reply.order.state == S.ORDER_STATE_ASSESSING_CANCELLATION
    assert c.state == S.CANCELLATION_STATE_IN_PROGRESS

    # A job failure meanwhile changes nothing: the cancellation decides.
    await publish(
        nats_server.url,
        "provisioning.cancellation_accepted",
        P.CancellationAccepted(
            job_id="j2", order_id=order.id, device_id="CPE-0001", cancellation_id=c.id
        ),
        order.id,
    )
    await wait_for(intake, order.id, S.ORDER_STATE_PENDING_CANCELLATION)
    await publish(
        nats_server.url,
        "provisioning.job_held",
        P.JobHeld(job_id="j2", order_id=order.id, device_id="CPE-0001", reason_code="X"),
        order.id,
    )
    await publish(
        nats_server.url,
        "provisioning.cancellation_completed",
        P.CancellationCompleted(
            job_id="j2",
            order_id=order.id,
            device_id="CPE-0001",
            cancellation_id=c.id,
            rolled_back=True,
            rolled_back_to=3,
            compensation="ROLLED_BACK",
        ),
        order.id,
    )
    done = await wait_for(intake, order.id, S.ORDER_STATE_CANCELLED)
    assert steps(done)[-3:] == [
        (S.ORDER_STATE_IN_PROGRESS, S.ORDER_STATE_ASSESSING_CANCELLATION, "clerk.zhang",
         "CUSTOMER_WITHDREW"),
        (S.ORDER_STATE_ASSESSING_CANCELLATION, S.ORDER_STATE_PENDING_CANCELLATION,
         "provisioning", "CANCELLATION_ACCEPTED"),
        (S.ORDER_STATE_PENDING_CANCELLATION, S.ORDER_STATE_CANCELLED, "provisioning",
         "ROLLED_BACK"),
    ]  # fmt: skip
    got = (
        await intake.GetCancellation(S.GetCancellationRequest(cancellation_id=c.id), metadata=CLERK)
    ).cancellation
    assert got.state == S.CANCELLATION_STATE_DONE
    assert got.rolled_back and got.rolled_back_to == 3
    assert "version 3" in got.detail and "版本 3" in got.detail


async def test_provisioning_declines_past_its_point_of_no_return_and_the_order_goes_on(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request("c3"), metadata=CLERK)).order
    c = (await cancel(intake, order.id, "cancel-c3")).cancellation
    # Activation raced the request: provisioning says so, and the order completes as usual.
    for event_type, payload in (
        ("provisioning.service_activated", P.ServiceActivated(order_id=order.id, job_id="j3")),
        (
            "provisioning.cancellation_declined",
            P.CancellationDeclined(
                job_id="j3",
                order_id=order.id,
                cancellation_id=c.id,
                reason_code="SERVICE_ALREADY_ACTIVATED",
            ),
        ),
    ):
        await publish(nats_server.url, event_type, payload, order.id)
    back = await wait_for(intake, order.id, S.ORDER_STATE_IN_PROGRESS)
    assert steps(back)[-1] == (
        S.ORDER_STATE_ASSESSING_CANCELLATION,
        S.ORDER_STATE_IN_PROGRESS,
        "provisioning",
        "SERVICE_ALREADY_ACTIVATED",
    )
    got = (
        await intake.GetCancellation(S.GetCancellationRequest(cancellation_id=c.id), metadata=CLERK)
    ).cancellation
    assert got.state == S.CANCELLATION_STATE_TERMINATED
    assert got.decline_reason == "SERVICE_ALREADY_ACTIVATED"
    await publish(
        nats_server.url,
        "provisioning.customer_notified",
        P.CustomerNotified(order_id=order.id, job_id="j3", delivery_id="d3", channel="sms"),
        order.id,
    )
    await wait_for(intake, order.id, S.ORDER_STATE_COMPLETED)


async def test_cancel_past_the_point_of_no_return_is_refused_saying_why(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request("c4"), metadata=CLERK)).order
    await publish(
        nats_server.url,
        "provisioning.service_activated",
        P.ServiceActivated(order_id=order.id, job_id="j4"),
        order.id,
    )
    await eventually(
        lambda: get(intake, order.id),
        lambda o: any(m.name == "service_activated" for m in o.milestones),
        15,
        "the service_activated milestone",
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await cancel(intake, order.id, "cancel-c4")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(refused.value)[0] == "POINT_OF_NO_RETURN"
    text = refused.value.details() or ""
    assert "point of no return" in text and "activated" in text and "无法撤单" in text
    after = await get(intake, order.id)
    assert after.state == S.ORDER_STATE_IN_PROGRESS
    assert all(c.to_state != S.ORDER_STATE_ASSESSING_CANCELLATION for c in after.history)
    listed = await intake.ListCancellations(
        S.ListCancellationsRequest(order_id=order.id), metadata=CLERK
    )
    assert not listed.cancellations


async def test_bad_requests_name_every_field(intake: order_pb2_grpc.OrderServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.CancelOrder(
            S.CancelOrderRequest(
                client_request_id="has space", order_id="x" * 40, reason_code="NOPE"
            ),
            metadata=CLERK,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = details(bad.value)[1]
    assert set(fields) == {"client_request_id", "order_id", "reason_code"}
    assert all(" | " in d for d in fields.values())
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await intake.CancelOrder(S.CancelOrderRequest(), metadata=CLERK)
    assert set(details(empty.value)[1]) == {"client_request_id", "order_id", "reason_code"}

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await cancel(intake, "00000000-0000-0000-0000-000000000000", "cancel-none")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as no_such:
        await intake.GetCancellation(
            S.GetCancellationRequest(cancellation_id="nope"), metadata=CLERK
        )
    assert no_such.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad_get:
        await intake.GetCancellation(S.GetCancellationRequest(), metadata=CLERK)
    assert set(details(bad_get.value)[1]) == {"cancellation_id"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_list:
        await intake.ListCancellations(
            S.ListCancellationsRequest(page_size=-1, page_token="zz"), metadata=CLERK
        )
    assert set(details(bad_list.value)[1]) == {"page_size", "page_token"}

    order = (await intake.CreateOrder(create_request("c5"), metadata=CLERK)).order
    with pytest.raises(grpc.aio.AioRpcError) as reviewer:
        await intake.CancelOrder(
            S.CancelOrderRequest(
                client_request_id="cancel-c5", order_id=order.id, reason_code="OTHER"
            ),
            metadata=REVIEWER,
        )
    assert reviewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await intake.CancelOrder(
            S.CancelOrderRequest(
                client_request_id="cancel-c5", order_id=order.id, reason_code="OTHER", etag="0"
            ),
            metadata=CLERK,
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert (await get(intake, order.id)).state == S.ORDER_STATE_IN_PROGRESS


async def test_a_retry_answers_the_same_request_and_a_reused_id_is_refused(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    order = (await intake.CreateOrder(create_request("c6"), metadata=CLERK)).order
    first = await cancel(intake, order.id, "cancel-c6")
    retry = await cancel(intake, order.id, "cancel-c6")
    assert first.created and not retry.created
    assert retry.cancellation.id == first.cancellation.id
    assert retry.order.state == S.ORDER_STATE_ASSESSING_CANCELLATION
    assert len(retry.order.history) == len(first.order.history)

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await cancel(intake, order.id, "cancel-c6", "OTHER")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(reused.value)[0] == "REQUEST_ID_REUSED"

    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await cancel(intake, order.id, "cancel-c6-b")
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(twice.value)[0] == "CANCELLATION_IN_PROGRESS"

    listed = await intake.ListCancellations(S.ListCancellationsRequest(), metadata=CLERK)
    assert first.cancellation.id in [c.id for c in listed.cancellations]
