"""Intake over real gRPC, with a real NATS JetStream server and both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.events.v1 import archive_events_pb2, envelope_pb2, provisioning_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings
from orderline_runtime.messaging.envelope import build_envelope

CLERK = (("authorization", "Bearer dev-clerk"),)
MANAGER = (("authorization", "Bearer dev-manager"),)


def create_request(request_id: str = "req-1", **overrides: Any) -> order_pb2.CreateOrderRequest:
    fields: dict[str, Any] = {
        "client_request_id": request_id,
        "business_type": "broadband_install",
        "customer": order_pb2.Customer(
            name="李娜",
            phone="+8613912345678",
            id_number="11010519491231002X",
            address="上海市浦东新区世纪大道100号",
            locale="zh-CN",
        ),
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
    }
    fields.update(overrides)
    return order_pb2.CreateOrderRequest(**fields)


@pytest.fixture
async def intake(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[order_pb2_grpc.OrderServiceStub]:
    settings = IntakeSettings(
        service_name="intake",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_server.url,
        trace_dir=tmp_path / "traces",
    )
    async with (
        serving(build(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield order_pb2_grpc.OrderServiceStub(channel)


async def stream_events(url: str, subject: str, count: int) -> list[nats.aio.msg.Msg]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=None)
        found: list[nats.aio.msg.Msg] = []
        deadline = asyncio.get_running_loop().time() + 15
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            try:
                found += await sub.fetch(count - len(found), timeout=1)
            except nats.errors.TimeoutError:
                continue
        return found
    finally:
        await nc.close()


async def publish(url: str, event_type: str, payload: Message, order_id: str) -> None:
    env = build_envelope(event_type, payload, producer="provisioning", order_id=order_id)
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(
            f"orderline.{event_type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )
    finally:
        await nc.close()


async def wait_for_state(
    stub: order_pb2_grpc.OrderServiceStub, order_id: str, state: int
) -> order_pb2.Order:
    async def get() -> order_pb2.Order:
        reply = await stub.GetOrder(order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK)
        return reply.order

    return await eventually(get, lambda o: o.state == state, 15, f"{order_id} to reach {state}")


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return {v.field: v.description for v in bad.field_violations}
    return {}


async def test_complete_order_is_approved_and_announced(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    reply = await intake.CreateOrder(create_request(), metadata=CLERK)
    assert reply.created
    order = reply.order
    assert order.state == order_pb2.ORDER_STATE_IN_PROGRESS
    assert [m.name for m in order.milestones] == ["review_approved"]
    assert [(h.from_state, h.to_state) for h in order.history] == [
        (order_pb2.ORDER_STATE_ACKNOWLEDGED, order_pb2.ORDER_STATE_ACKNOWLEDGED),
        (order_pb2.ORDER_STATE_ACKNOWLEDGED, order_pb2.ORDER_STATE_IN_PROGRESS),
    ]

    msgs = await stream_events(nats_server.url, "orderline.order.>", 3)
    assert [m.subject for m in msgs] == [
        "orderline.order.created",
        "orderline.order.state_changed",
        "orderline.order.approved",
    ]
    for m in msgs:
        env = envelope_pb2.Envelope.FromString(m.data)
        assert env.order_id == order.id
        assert m.headers and m.headers["Nats-Msg-Id"] == env.id
        # No personal data leaves intake in events.
        assert b"+8613912345678" not in m.data and "李娜".encode() not in m.data


async def test_retry_with_same_request_id_returns_the_first_order(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    first = await intake.CreateOrder(create_request("same"), metadata=CLERK)
    again = await intake.CreateOrder(create_request("same"), metadata=CLERK)
    assert not again.created
    assert again.order.id == first.order.id
    listed = await intake.ListOrders(order_pb2.ListOrdersRequest(), metadata=CLERK)
    assert [o.id for o in listed.orders] == [first.order.id]


async def test_bad_fields_are_each_named(intake: order_pb2_grpc.OrderServiceStub) -> None:
    bad = create_request(
        "",
        customer=order_pb2.Customer(name="x", phone="12345", id_number="", address="", locale="de"),
        device_id="",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.CreateOrder(bad, metadata=CLERK)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(err.value)) == {
        "client_request_id",
        "customer.phone",
        "customer.id_number",
        "customer.address",
        "customer.locale",
        "device_id",
    }


async def test_unknown_order_is_not_found(intake: order_pb2_grpc.OrderServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.GetOrder(
            order_pb2.GetOrderRequest(order_id="0190d5d6-0000-7000-8000-000000000000"),
            metadata=CLERK,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_callers_without_a_valid_token_or_role_are_refused(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as none:
        await intake.CreateOrder(create_request())
    assert none.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.CreateOrder(create_request(), metadata=(("authorization", "Bearer nope"),))
    assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as role:
        await intake.CreateOrder(create_request(), metadata=MANAGER)
    assert role.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_manager_sees_customer_data_masked(intake: order_pb2_grpc.OrderServiceStub) -> None:
    created = (await intake.CreateOrder(create_request(), metadata=CLERK)).order
    seen = (
        await intake.GetOrder(order_pb2.GetOrderRequest(order_id=created.id), metadata=MANAGER)
    ).order
    assert seen.customer.phone == "+86139****5678"
    assert seen.customer.id_number.startswith("110") and "1949" not in seen.customer.id_number


async def test_order_follows_provisioning_to_completed_and_archived(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request(), metadata=CLERK)).order
    watch = intake.WatchOrders(order_pb2.WatchOrdersRequest(order_ids=[order.id]), metadata=CLERK)
    P = provisioning_events_pb2
    steps: list[tuple[str, Message]] = [
        ("provisioning.prechecks_passed", P.PrechecksPassed(order_id=order.id)),
        ("provisioning.device_configured", P.DeviceConfigured(order_id=order.id)),
        ("provisioning.tests_passed", P.TestsPassed(order_id=order.id)),
        ("provisioning.service_activated", P.ServiceActivated(order_id=order.id)),
        ("provisioning.voucher_issued", P.VoucherIssued(order_id=order.id, voucher_id="AV-1")),
        ("provisioning.customer_notified", P.CustomerNotified(order_id=order.id)),
    ]
    for event_type, payload in steps:
        await publish(nats_server.url, event_type, payload, order.id)

    done = await wait_for_state(intake, order.id, order_pb2.ORDER_STATE_COMPLETED)
    assert done.state == order_pb2.ORDER_STATE_COMPLETED
    assert done.voucher_id == "AV-1"
    completed = await stream_events(nats_server.url, "orderline.order.completed", 1)
    assert len(completed) == 1

    await publish(
        nats_server.url,
        "archive.dossier_sealed",
        archive_events_pb2.DossierSealed(order_id=order.id, dossier_id="D-1"),
        order.id,
    )
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        got = await intake.GetOrder(order_pb2.GetOrderRequest(order_id=order.id), metadata=CLERK)
        if got.order.dossier_id:
            break
        await asyncio.sleep(0.05)
    assert got.order.dossier_id == "D-1"
    assert "dossier_archived" in [m.name for m in got.order.milestones]

    states = []
    async for update in watch:
        states.append(update.order.state)
        if update.order.state == order_pb2.ORDER_STATE_COMPLETED:
            break
    watch.cancel()
    assert states[0] == order_pb2.ORDER_STATE_IN_PROGRESS
    assert states[-1] == order_pb2.ORDER_STATE_COMPLETED


async def test_abnormal_device_holds_the_order_with_its_alarm(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request(), metadata=CLERK)).order
    await publish(
        nats_server.url,
        "provisioning.job_held",
        provisioning_events_pb2.JobHeld(
            order_id=order.id, reason_code="DEVICE_ABNORMAL", alarm_id="ALM-9"
        ),
        order.id,
    )
    held = await wait_for_state(intake, order.id, order_pb2.ORDER_STATE_HELD)
    assert held.state == order_pb2.ORDER_STATE_HELD
    assert (held.alarm_id, held.state_reason) == ("ALM-9", "DEVICE_ABNORMAL")
