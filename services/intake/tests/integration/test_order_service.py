"""Intake over real gRPC, with a real NATS JetStream server and both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
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
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


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
        "documents": [order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=183_211)],
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


async def test_orders_are_listed_by_when_they_were_created(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    first = (await intake.CreateOrder(create_request("when-1"), metadata=CLERK)).order
    second = (await intake.CreateOrder(create_request("when-2"), metadata=CLERK)).order
    assert first.created_at.ToDatetime() < second.created_at.ToDatetime()

    async def listed(**created: Timestamp) -> list[str]:
        reply = await intake.ListOrders(order_pb2.ListOrdersRequest(**created), metadata=CLERK)
        return [o.id for o in reply.orders]

    assert await listed(created_from=second.created_at) == [second.id]
    assert await listed(created_before=second.created_at) == [first.id]
    assert await listed(created_from=first.created_at, created_before=second.created_at) == [
        first.id
    ]

    # A page token carries its filters: the next page of another range is refused.
    paged = await intake.ListOrders(
        order_pb2.ListOrdersRequest(page_size=1, created_from=first.created_at), metadata=CLERK
    )
    assert [o.id for o in paged.orders] == [second.id] and paged.next_page_token
    rest = await intake.ListOrders(
        order_pb2.ListOrdersRequest(
            page_size=1, created_from=first.created_at, page_token=paged.next_page_token
        ),
        metadata=CLERK,
    )
    assert [o.id for o in rest.orders] == [first.id]
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await intake.ListOrders(
            order_pb2.ListOrdersRequest(page_size=1, page_token=paged.next_page_token),
            metadata=CLERK,
        )
    assert other.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.ListOrders(
            order_pb2.ListOrdersRequest(
                created_from=second.created_at,
                created_before=first.created_at,
            ),
            metadata=CLERK,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "created_before" in (bad.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await intake.ListOrders(
            order_pb2.ListOrdersRequest(created_from=Timestamp(nanos=-1)), metadata=CLERK
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "created_from" in (invalid.value.details() or "")


async def test_a_request_id_reused_for_another_order_is_already_exists(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    first = await intake.CreateOrder(create_request("reused"), metadata=CLERK)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.CreateOrder(create_request("reused", plan="fiber-1000m"), metadata=CLERK)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.order.id in (err.value.details() or "")
    got = await intake.GetOrder(order_pb2.GetOrderRequest(order_id=first.order.id), metadata=CLERK)
    assert got.order.plan == first.order.plan


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
        "customer.identity",
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


MILESTONES = [
    ("prechecks_passed", "provisioning.prechecks_passed"),
    ("device_configured", "provisioning.device_configured"),
    ("tests_passed", "provisioning.tests_passed"),
    ("service_activated", "provisioning.service_activated"),
    ("voucher_issued", "provisioning.voucher_issued"),
    ("customer_notified", "provisioning.customer_notified"),
    ("dossier_archived", "archive.dossier_sealed"),
]


async def test_order_follows_provisioning_to_completed_and_archived(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = (await intake.CreateOrder(create_request(), metadata=CLERK)).order
    watch = intake.WatchOrders(order_pb2.WatchOrdersRequest(order_ids=[order.id]), metadata=CLERK)
    updates = aiter(watch)
    # The order as it is when the watch opens, before any milestone is published.
    first = await anext(updates)
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

    states = [first.order.state]
    milestones = [[m.name for m in first.order.milestones]]
    async for update in updates:
        states.append(update.order.state)
        milestones.append([m.name for m in update.order.milestones])
        if "dossier_archived" in milestones[-1]:
            break
    watch.cancel()
    assert states[0] == order_pb2.ORDER_STATE_IN_PROGRESS
    assert order_pb2.ORDER_STATE_COMPLETED in states
    # Every change on its own, in order: each update adds exactly the next milestone.
    assert milestones == [
        ["review_approved", *(name for name, _ in MILESTONES[:i])] for i in range(8)
    ]


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


# --- the business catalogue --------------------------------------------------------------------


async def test_every_role_lists_the_business_types_with_what_each_requires(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    reply = await intake.ListBusinessTypes(order_pb2.ListBusinessTypesRequest(), metadata=MANAGER)
    assert reply.catalogue_version
    types = {t.id: t for t in reply.business_types}
    assert set(types) == {
        "broadband_install",
        "fixed_line",
        "dedicated_line",
        "plan_change",
        "iptv",
        "relocation",
        "termination",
    }
    broadband = types["broadband_install"]
    assert (broadband.name_zh_cn, broadband.name_en) == ("宽带新装", "Broadband installation")
    assert "customer.identity" in broadband.required_fields
    assert [(d.type, d.name_zh_cn) for d in broadband.required_documents] == [
        ("identity_copy", "身份证件复印件")
    ]
    assert ("HG8245H5 ONT", "V5R020C10S100") in [
        (m.model, m.min_firmware) for m in broadband.device_models
    ]
    assert list(broadband.follow_up_days) == [7, 30]
    slas = {s.milestone: s.due_after.ToTimedelta() for s in broadband.slas}
    assert slas["review_approved"] == timedelta(hours=4)
    assert slas["service_activated"] == timedelta(hours=48)
    assert broadband.test_profile.tests and broadband.config_template
    assert {"relocation.old_address", "relocation.new_address"} <= set(
        types["relocation"].required_fields
    )
    assert list(types["termination"].test_profile.tests) == []


async def test_an_unknown_business_type_is_refused_on_its_field(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.CreateOrder(create_request(business_type="satellite_uplink"), metadata=CLERK)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(err.value)
    assert list(found) == ["business_type"]
    assert (
        "broadband_install" in found["business_type"] and "未知业务类型" in found["business_type"]
    )


# --- customer data -----------------------------------------------------------------------------


async def test_every_bad_customer_field_comes_back_at_once_in_english_and_chinese(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    bad = create_request(
        "req-bad",
        customer=order_pb2.Customer(
            name="x" * 101,
            phone="+8615412345678",
            identity=order_pb2.Identity(resident_id="110105194912310021"),
            address="",
            locale="fr",
            preferred_channel=7,  # type: ignore[arg-type]
        ),
        device_id="cpe 1",
        plan="p" * 65,
        documents=[
            order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=1),
            order_pb2.Document(type="selfie", sha256="beef", size_bytes=-1),
        ],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.CreateOrder(bad, metadata=CLERK)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(err.value)
    assert set(found) == {
        "customer.name",
        "customer.phone",
        "customer.identity.resident_id",
        "customer.address",
        "customer.locale",
        "customer.preferred_channel",
        "device_id",
        "plan",
        "documents[1].type",
        "documents[1].sha256",
        "documents[1].size_bytes",
    }
    assert "check digit" in found["customer.identity.resident_id"]
    assert "校验码" in found["customer.identity.resident_id"]
    assert "154" in found["customer.phone"]
    listed = await intake.ListOrders(order_pb2.ListOrdersRequest(), metadata=CLERK)
    assert list(listed.orders) == []


async def test_a_relocation_with_a_passport_is_kept_and_masked_for_a_manager(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    request = order_pb2.CreateOrderRequest(
        client_request_id="req-move",
        business_type="relocation",
        customer=order_pb2.Customer(
            name="John Smith",
            phone="+8613912345678",
            identity=order_pb2.Identity(
                passport=order_pb2.Passport(number="533380006", issuing_country="gbr")
            ),
            locale="en",
            preferred_channel=order_pb2.CONTACT_CHANNEL_PHONE,
        ),
        relocation=order_pb2.Relocation(
            old_address="北京市朝阳区建国路88号", new_address="北京市海淀区中关村大街1号"
        ),
        device_id="CPE-0002",
        documents=[
            order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=120_000),
            order_pb2.Document(type="residence_proof", sha256=HASH.upper()[::-1], size_bytes=9),
        ],
    )
    created = (await intake.CreateOrder(request, metadata=CLERK)).order
    got = (
        await intake.GetOrder(order_pb2.GetOrderRequest(order_id=created.id), metadata=CLERK)
    ).order
    assert got.customer.identity.passport.number == "533380006"
    assert got.customer.identity.passport.issuing_country == "GBR"
    assert got.customer.id_number == ""
    assert got.customer.preferred_channel == order_pb2.CONTACT_CHANNEL_PHONE
    assert (got.relocation.old_address, got.relocation.new_address) == (
        "北京市朝阳区建国路88号",
        "北京市海淀区中关村大街1号",
    )
    assert [(d.type, d.sha256, d.size_bytes) for d in got.documents] == [
        ("identity_copy", HASH, 120_000),
        ("residence_proof", HASH[::-1], 9),
    ]

    seen = (
        await intake.GetOrder(order_pb2.GetOrderRequest(order_id=created.id), metadata=MANAGER)
    ).order
    assert "533380006" not in seen.customer.identity.passport.number
    assert (
        "中关村" not in seen.relocation.new_address and "建国路" not in seen.relocation.old_address
    )
    assert seen.documents == got.documents


async def test_an_order_from_before_identities_reads_its_resident_id_both_ways(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    created = (await intake.CreateOrder(create_request(), metadata=CLERK)).order
    assert created.customer.id_number == "11010519491231002X"
    assert created.customer.identity.resident_id == "11010519491231002X"
    # Named no channel, has a mobile: texted.
    assert created.customer.preferred_channel == order_pb2.CONTACT_CHANNEL_SMS


async def test_a_watch_on_one_replica_sees_orders_another_replica_records(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    def replica(name: str) -> Any:
        return build(
            IntakeSettings(
                service_name="intake",
                grpc_port=free_port(),
                database_url=db_url,
                nats_url=nats_server.url,
                trace_dir=tmp_path / name,
            )
        )

    async with (
        serving(replica("a")) as a_address,
        serving(replica("b")) as b_address,
        grpc.aio.insecure_channel(a_address) as a_channel,
        grpc.aio.insecure_channel(b_address) as b_channel,
    ):
        on_a = order_pb2_grpc.OrderServiceStub(a_channel)
        on_b = order_pb2_grpc.OrderServiceStub(b_channel)
        watch = on_a.WatchOrders(order_pb2.WatchOrdersRequest(), metadata=CLERK)
        await asyncio.sleep(0.5)  # the watch is open before the order exists
        recorded = (await on_b.CreateOrder(create_request("req-b"), metadata=CLERK)).order
        async with asyncio.timeout(15):
            async for update in watch:
                if update.order.id == recorded.id:
                    break
        watch.cancel()
        assert update.order.state == order_pb2.ORDER_STATE_IN_PROGRESS
        assert update.order.etag == recorded.etag
