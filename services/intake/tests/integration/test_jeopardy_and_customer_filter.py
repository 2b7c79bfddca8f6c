"""Jeopardy and the customer filter over real gRPC, with real NATS and both databases.

The service's clock is moved by the test (milestones fall past their SLA hours later) and the
sweep reads it; the test polls for the state it expects, never for a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from alembic import command
from sqlalchemy import text

import orderline_intake
from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build, customer_hasher
from orderline_intake.settings import IntakeSettings
from orderline_runtime.database import Database
from orderline_runtime.migrations import alembic_config

from .test_aftercare import MovableClock
from .test_order_service import stream_events
from .test_review_amend_hold import (
    CLERK,
    PRINCIPALS,
    REVIEWER,
    create,
    create_request,
    details,
    passport_customer,
)

S = order_pb2
Stub = order_pb2_grpc.OrderServiceStub
MIGRATIONS = Path(orderline_intake.__file__).parent / "migrations"


def settings_for(db_url: str, nats_url: str, tmp_path: Path) -> IntakeSettings:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({t: {"subject": s, "roles": r} for t, (s, r) in PRINCIPALS.items()})
    )
    return IntakeSettings(
        service_name="intake",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_url,
        trace_dir=tmp_path / "traces",
        auth_tokens_file=tokens,
    )


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def intake(
    db_url: str, nats_server: NatsServer, tmp_path: Path, clock: MovableClock
) -> AsyncIterator[Stub]:
    service = build(
        settings_for(db_url, nats_server.url, tmp_path), clock=clock, jeopardy_sweep_seconds=0.1
    )
    async with serving(service) as address, grpc.aio.insecure_channel(address) as channel:
        yield order_pb2_grpc.OrderServiceStub(channel)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value


async def test_due_times_show_on_the_order_and_a_late_review_raises_jeopardy_once(
    intake: Stub, nats_server: NatsServer, clock: MovableClock
) -> None:
    queued = await create(intake, create_request("j1", customer=passport_customer()))
    assert queued.state == S.ORDER_STATE_ACKNOWLEDGED  # waits for a reviewer
    dues = {d.milestone: d for d in queued.milestone_dues}
    created = queued.created_at.ToDatetime(UTC)
    assert dues["review_approved"].due_at.ToDatetime(UTC) == created + timedelta(hours=4)
    assert dues["customer_notified"].due_at.ToDatetime(UTC) == created + timedelta(hours=49)
    assert not queued.in_jeopardy and not dues["review_approved"].HasField("jeopardy_raised_at")
    on_time = await create(intake, create_request("j2"))  # approved at once
    assert on_time.state == S.ORDER_STATE_IN_PROGRESS

    clock.move(timedelta(hours=5))  # review_approved due 4h after creation: past due

    async def listed() -> S.ListJeopardyResponse:
        return await intake.ListJeopardy(S.ListJeopardyRequest(), metadata=CLERK)

    reply = await eventually(listed, lambda r: len(r.entries) == 1, 15, "jeopardy listed")
    [entry] = reply.entries
    assert (entry.order.id, entry.milestone) == (queued.id, "review_approved")
    assert entry.due_at == dues["review_approved"].due_at
    assert entry.order.in_jeopardy
    got = (await intake.GetOrder(S.GetOrderRequest(order_id=queued.id), metadata=CLERK)).order
    [late] = [d for d in got.milestone_dues if d.milestone == "review_approved"]
    assert late.HasField("jeopardy_raised_at") and got.in_jeopardy

    [msg] = await stream_events(nats_server.url, "orderline.order.jeopardy_raised", 1)
    env = envelope_pb2.Envelope.FromString(msg.data)
    raised = order_events_pb2.JeopardyRaised()
    env.payload.Unpack(raised)
    assert (raised.order_id, raised.milestone, raised.state) == (
        queued.id,
        "review_approved",
        S.ORDER_STATE_ACKNOWLEDGED,
    )
    assert env.order_id == queued.id
    # No customer data in it.
    assert b"K12345678" not in msg.data and b"+8613912345678" not in msg.data

    # Approved late: no longer in jeopardy; the raise is kept and never repeated.
    await intake.ApproveOrder(S.ApproveOrderRequest(order_id=queued.id), metadata=REVIEWER)
    assert not (await listed()).entries
    again = (await intake.GetOrder(S.GetOrderRequest(order_id=queued.id), metadata=CLERK)).order
    assert not again.in_jeopardy
    # Every jeopardy event so far (the sweep ran many times meanwhile): one for this review.
    msgs = await stream_events(nats_server.url, "orderline.order.jeopardy_raised", 2)
    review_raises = []
    for m in msgs:
        e = envelope_pb2.Envelope.FromString(m.data)
        p = order_events_pb2.JeopardyRaised()
        e.payload.Unpack(p)
        review_raises += [p.order_id] if p.milestone == "review_approved" else []
    assert review_raises == [queued.id]


async def test_list_jeopardy_pages_oldest_due_first_and_refuses_bad_input(
    intake: Stub, clock: MovableClock
) -> None:
    first = await create(intake, create_request("p1", customer=passport_customer("北京1号")))
    clock.move(timedelta(minutes=1))
    second = await create(intake, create_request("p2", customer=passport_customer("北京2号")))
    clock.move(timedelta(hours=5))

    async def page(token: str = "") -> S.ListJeopardyResponse:
        return await intake.ListJeopardy(
            S.ListJeopardyRequest(page_size=1, page_token=token), metadata=CLERK
        )

    one = await eventually(
        lambda: intake.ListJeopardy(S.ListJeopardyRequest(), metadata=CLERK),
        lambda r: len(r.entries) == 2,
        15,
        "both in jeopardy",
    )
    assert [e.order.id for e in one.entries] == [first.id, second.id]
    head = await page()
    assert [e.order.id for e in head.entries] == [first.id] and head.next_page_token
    rest = await page(head.next_page_token)
    assert [e.order.id for e in rest.entries] == [second.id]

    err = await refused(
        intake.ListJeopardy(
            S.ListJeopardyRequest(page_size=501, page_token="nonsense"), metadata=CLERK
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details(err)[1]) == {"page_size", "page_token"}
    other = await refused(
        intake.ListJeopardy(
            S.ListJeopardyRequest(business_type="iptv", page_token=head.next_page_token),
            metadata=CLERK,
        )
    )
    assert other.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_orders_are_listed_by_a_customer_phone_or_identity_number(intake: Stub) -> None:
    mine = await create(intake, create_request("c1"))
    await create(
        intake,
        create_request(
            "c2",
            customer=S.Customer(
                name="王芳",
                phone="+8613800138002",
                identity=S.Identity(resident_id="310115198001010016"),
                address="上海市浦东新区世纪大道100号",
                locale="zh-CN",
            ),
        ),
    )

    async def by(value: str) -> list[str]:
        reply = await intake.ListOrders(S.ListOrdersRequest(customer=value), metadata=CLERK)
        return [o.id for o in reply.orders]

    assert await by("139 1234 5678") == [mine.id]
    assert await by("+8613912345678") == [mine.id]
    assert await by("11010519491231002x") == [mine.id]
    assert await by("+8613700000000") == []

    err = await refused(intake.ListOrders(S.ListOrdersRequest(customer="9" * 65), metadata=CLERK))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details(err)[1]) == {"customer"}
    blank = await refused(intake.ListOrders(S.ListOrdersRequest(customer="   "), metadata=CLERK))
    assert set(details(blank)[1]) == {"customer"}


async def test_an_order_recorded_before_the_hashes_is_found_after_the_start_up_backfill(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, db_url), "0006")
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    db = Database(db_url)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                text(
                    "INSERT INTO orders (id, client_request_id, business_type, state, state_reason,"
                    " customer_name, customer_phone, customer_id_number, customer_address,"
                    " customer_locale, device_id, plan, created_by, created_at, updated_at,"
                    " voucher_id, dossier_id, alarm_id, version) VALUES ('o-old', 'req-old',"
                    " 'broadband_install', 'inProgress', '', '张伟', '+8613800138000',"
                    " '11010519491231002X', '北京市朝阳区建国路88号', 'zh-CN', 'CPE-0001',"
                    " 'fiber-500m', 'clerk-li', :at, :at, '', '', '', 1)"
                ),
                {"at": at},
            )
    finally:
        await db.dispose()

    settings = settings_for(db_url, nats_server.url, tmp_path)
    async with serving(build(settings)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)

        async def found() -> list[str]:
            reply = await stub.ListOrders(
                S.ListOrdersRequest(customer="13800138000"), metadata=CLERK
            )
            return [o.id for o in reply.orders]

        assert await eventually(found, lambda ids: ids == ["o-old"], 15, "backfilled") == ["o-old"]
        old = (await stub.GetOrder(S.GetOrderRequest(order_id="o-old"), metadata=CLERK)).order
        # Recorded before due times were kept: none, and never in jeopardy.
        assert not old.milestone_dues and not old.in_jeopardy


def test_without_a_key_intake_starts_only_in_development(tmp_path: Path) -> None:
    base = IntakeSettings(service_name="intake", allow_development_tokens=False)
    with pytest.raises(ValueError, match="ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE"):
        customer_hasher(base)
    assert customer_hasher(base.model_copy(update={"allow_development_tokens": True})).key_id
    key = tmp_path / "hash.key"
    key.write_text("s" * 48 + "\n")
    with pytest.raises(ValueError, match="KEY_ID"):
        customer_hasher(base.model_copy(update={"intake_customer_hash_key_file": key}))
    hasher = customer_hasher(
        base.model_copy(
            update={"intake_customer_hash_key_file": key, "intake_customer_hash_key_id": "k2"}
        )
    )
    assert (hasher.key, hasher.key_id) == (b"s" * 48, "k2")
    key.write_text("short")
    with pytest.raises(ValueError, match="at least 32"):
        customer_hasher(
            base.model_copy(
                update={"intake_customer_hash_key_file": key, "intake_customer_hash_key_id": "k"}
            )
        )
