"""Customers' phone, identity numbers and addresses at rest, over real gRPC with real NATS and
both databases: what intake writes is sealed field by field; rows written before (clear) or
sealed under an older key are sealed under the current key by the start-up task; a raw read of
the database then finds none of them in clear, and every order still reads back. Every response
showing them unmasked is audited (ListPiiReads, for auditors); masked ones are not."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from alembic import command
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import MetaData, select, text

import orderline_intake
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build, pii_cipher
from orderline_intake.settings import IntakeSettings
from orderline_runtime.database import Database
from orderline_runtime.migrations import alembic_config

from .test_review_amend_hold import (
    CLERK,
    HASH,
    PRINCIPALS,
    REVIEWER,
    create,
    create_request,
    details,
)

S = order_pb2
MIGRATIONS = Path(orderline_intake.__file__).parent / "migrations"
K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(50, 82))).decode()
OLD_PHONE, OLD_ID, OLD_ADDRESS = "+8613800138000", "11010519491231002X", "北京市朝阳区建国路88号"
MORE_PRINCIPALS = {
    "t-audit": ("auditor.wu", ["auditor"]),
    "t-mgr": ("manager.sun", ["manager"]),
}
AUDITOR = (("authorization", "Bearer t-audit"),)
MANAGER = (("authorization", "Bearer t-mgr"),)
MOVE_FROM, MOVE_TO = "北京市东城区东直门南大街1号", "北京市海淀区中关村大街27号"


def settings_for(
    db_url: str, nats_url: str, tmp_path: Path, keyring: str, key_id: str
) -> IntakeSettings:
    tokens = tmp_path / "tokens.json"
    everyone = {**PRINCIPALS, **MORE_PRINCIPALS}
    tokens.write_text(json.dumps({t: {"subject": s, "roles": r} for t, (s, r) in everyone.items()}))
    keys = tmp_path / f"pii-keys-{key_id}"
    keys.write_text(keyring)
    return IntakeSettings(
        service_name="intake",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_url,
        trace_dir=tmp_path / "traces",
        auth_tokens_file=tokens,
        intake_pii_keys_file=keys,
        intake_pii_key_id=key_id,
    )


async def raw_rows(db_url: str) -> dict[str, list[str]]:
    """Every row of every table of intake's database, each as one string of its values."""
    db = Database(db_url)
    try:
        tables = MetaData()
        async with db.reading() as conn:
            await conn.run_sync(lambda sync: tables.reflect(sync))
            return {
                name: [
                    " ".join(str(v) for v in row)
                    for row in (await conn.execute(select(table))).all()
                ]
                for name, table in tables.tables.items()
            }
    finally:
        await db.dispose()


def clear_values_in(rows: dict[str, list[str]], values: list[str]) -> list[tuple[str, str]]:
    return [(t, v) for t, texts in rows.items() for row in texts for v in values if v in row]


async def insert_clear_order(db_url: str) -> None:
    """An order as intake wrote it before migration 0008: every field in clear."""
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, db_url), "0007")
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    db = Database(db_url)
    try:
        async with db.transaction() as conn:
            for order_id, business_type, old, new in (
                ("o-old", "broadband_install", "", ""),
                ("o-old-move", "relocation", MOVE_FROM, MOVE_TO),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO orders (id, client_request_id, business_type, state,"
                        " state_reason, customer_name, customer_phone, customer_id_number,"
                        " customer_address, customer_locale, device_id, plan, created_by,"
                        " created_at, updated_at, voucher_id, dossier_id, alarm_id, version,"
                        " relocation_old_address, relocation_new_address) VALUES (:id, :req,"
                        " :type, 'inProgress', '', '张伟', :phone, :idn, :address, 'zh-CN',"
                        " 'CPE-0001', 'fiber-500m', 'clerk-li', :at, :at, '', '', '', 1, :old,"
                        " :new)"
                    ),
                    {
                        "id": order_id,
                        "req": f"req-{order_id}",
                        "type": business_type,
                        "phone": OLD_PHONE,
                        "idn": OLD_ID,
                        "address": OLD_ADDRESS if not old else "",
                        "at": at,
                        "old": old,
                        "new": new,
                    },
                )
    finally:
        await db.dispose()


def relocation_request() -> order_pb2.CreateOrderRequest:
    return S.CreateOrderRequest(
        client_request_id="req-move",
        business_type="relocation",
        customer=S.Customer(
            name="John Smith",
            phone="+8613711112222",
            identity=S.Identity(passport=S.Passport(number="533380006", issuing_country="GBR")),
            locale="en",
        ),
        relocation=S.Relocation(old_address=MOVE_FROM + "A", new_address=MOVE_TO + "B"),
        device_id="CPE-0002",
        documents=[
            S.Document(type="identity_copy", sha256=HASH, size_bytes=120_000),
            S.Document(type="residence_proof", sha256=HASH[::-1], size_bytes=9),
        ],
    )


async def test_what_intake_writes_is_sealed_and_what_was_clear_is_sealed_at_start_then_rotated(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    await insert_clear_order(db_url)
    first = settings_for(db_url, nats_server.url, tmp_path, f"k1: {K1}\n", "k1")
    async with serving(build(first)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        mine = await create(stub, create_request("req-pii"))
        moving = await create(stub, relocation_request())

        async def pii_key_ids() -> set[str]:
            db = Database(db_url)
            try:
                async with db.reading() as conn:
                    found = await conn.execute(text("SELECT pii_key_id FROM orders"))
                    return {r[0] for r in found}
            finally:
                await db.dispose()

        await eventually(pii_key_ids, lambda ids: ids == {"k1"}, 15, "every row sealed by k1")
        old = (await stub.GetOrder(S.GetOrderRequest(order_id="o-old"), metadata=CLERK)).order
        assert (old.customer.phone, old.customer.id_number, old.customer.address) == (
            OLD_PHONE,
            OLD_ID,
            OLD_ADDRESS,
        )

    clear = [
        OLD_PHONE,
        OLD_ID,
        OLD_ADDRESS,
        MOVE_FROM,
        MOVE_TO,
        "+8613912345678",
        "11010519491231002X",
        "世纪大道100号",
        "+8613711112222",
        "533380006",
        "13800138000",
        "13912345678",
    ]
    rows = await raw_rows(db_url)
    assert clear_values_in(rows, clear) == []
    assert all("v1:k1:" in r for r in rows["orders"])

    # Rotation: k2 becomes current, k1 stays in the keyring until every row is sealed by k2.
    second = settings_for(db_url, nats_server.url, tmp_path, f"k1: {K1}\nk2: {K2}\n", "k2")
    async with serving(build(second)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)

        async def relocation_of(order_id: str) -> tuple[str, str]:
            got = (await stub.GetOrder(S.GetOrderRequest(order_id=order_id), metadata=CLERK)).order
            return got.relocation.old_address, got.relocation.new_address

        # Readable throughout: whichever key a row is sealed by at the moment.
        assert await relocation_of("o-old-move") == (MOVE_FROM, MOVE_TO)
        assert await relocation_of(moving.id) == (MOVE_FROM + "A", MOVE_TO + "B")
        await eventually(pii_key_ids, lambda ids: ids == {"k2"}, 15, "every row sealed by k2")
        got = (await stub.GetOrder(S.GetOrderRequest(order_id=mine.id), metadata=CLERK)).order
        assert (got.customer.phone, got.customer.id_number) == ("+8613912345678", OLD_ID)
        assert got.customer.address == "上海市浦东新区世纪大道100号req-pii室"
        found = await stub.ListOrders(S.ListOrdersRequest(customer="13800138000"), metadata=CLERK)
        assert sorted(o.id for o in found.orders) == ["o-old", "o-old-move"]
    rows = await raw_rows(db_url)
    assert clear_values_in(rows, clear) == []
    assert all("v1:k2:" in r and "v1:k1:" not in r for r in rows["orders"])

    # Without k1 now: nothing is sealed by it any more, and intake reads every order.
    third = settings_for(db_url, nats_server.url, tmp_path, f"k2: {K2}\n", "k2")
    async with serving(build(third)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        listed = await stub.ListOrders(S.ListOrdersRequest(), metadata=CLERK)
        assert {o.customer.phone for o in listed.orders} == {
            OLD_PHONE,
            "+8613912345678",
            "+8613711112222",
        }


async def test_a_value_moved_to_another_row_is_refused_not_shown(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(db_url, nats_server.url, tmp_path, f"k1: {K1}\n", "k1")
    async with serving(build(settings)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        a = await create(stub, create_request("req-a"))
        b = await create(
            stub,
            create_request(
                "req-b",
                customer=S.Customer(
                    name="王芳",
                    phone="+8613800138002",
                    identity=S.Identity(resident_id="310115198001010016"),
                    address="上海市徐汇区漕溪北路1号",
                    locale="zh-CN",
                ),
            ),
        )
        db = Database(db_url)
        try:
            async with db.transaction() as conn:
                await conn.execute(
                    text(
                        "UPDATE orders SET customer_phone_sealed = (SELECT customer_phone_sealed"
                        " FROM orders WHERE id = :a) WHERE id = :b"
                    ),
                    {"a": a.id, "b": b.id},
                )
        finally:
            await db.dispose()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(S.GetOrderRequest(order_id=b.id), metadata=CLERK)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "+8613912345678" not in (err.value.details() or "")
        got = (await stub.GetOrder(S.GetOrderRequest(order_id=a.id), metadata=CLERK)).order
        assert got.customer.phone == "+8613912345678"


def test_without_a_keyring_intake_starts_only_in_development(tmp_path: Path) -> None:
    base = IntakeSettings(service_name="intake", allow_development_tokens=False)
    with pytest.raises(ValueError, match="ORDERLINE_INTAKE_PII_KEYS_FILE is not set"):
        pii_cipher(base)
    assert pii_cipher(base.model_copy(update={"allow_development_tokens": True})).current == "dev"
    keys = tmp_path / "pii.keys"
    keys.write_text(f"k1: {K1}\n")
    with pytest.raises(ValueError, match="ORDERLINE_INTAKE_PII_KEY_ID is not set"):
        pii_cipher(base.model_copy(update={"intake_pii_keys_file": keys}))
    with pytest.raises(ValueError, match="current PII key id 'k2' is not in the keyring"):
        pii_cipher(
            base.model_copy(update={"intake_pii_keys_file": keys, "intake_pii_key_id": "k2"})
        )
    cipher = pii_cipher(
        base.model_copy(update={"intake_pii_keys_file": keys, "intake_pii_key_id": "k1"})
    )
    assert cipher.current == "k1" and set(cipher.keys) == {"k1"}
    keys.write_text("k1: c2hvcnQ=\n")
    with pytest.raises(ValueError, match="exactly 32"):
        pii_cipher(
            base.model_copy(update={"intake_pii_keys_file": keys, "intake_pii_key_id": "k1"})
        )


async def test_every_clear_read_is_audited_and_only_auditors_list_them(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(db_url, nats_server.url, tmp_path, f"k1: {K1}\n", "k1")
    async with serving(build(settings)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        started = datetime.now(UTC) - timedelta(minutes=5)
        order = await create(stub, create_request("req-audit"))
        other = await create(stub, create_request("req-other"))

        async def reads(**filters: object) -> list[tuple[str, str, list[str], str]]:
            reply = await stub.ListPiiReads(S.ListPiiReadsRequest(**filters), metadata=AUDITOR)
            return [(r.order_id, r.principal, list(r.roles), r.rpc) for r in reply.reads]

        before = await reads(order_id=order.id)
        assert before == [(order.id, "clerk.zhang", ["clerk"], "CreateOrder")]
        # Masked reads (manager, auditor) write nothing.
        for who in (MANAGER, AUDITOR):
            got = (await stub.GetOrder(S.GetOrderRequest(order_id=order.id), metadata=who)).order
            assert got.customer.phone != "+8613912345678"
            await stub.ListOrders(S.ListOrdersRequest(), metadata=who)
        assert await reads(order_id=order.id) == before
        # A role that may see it unmasked asks for the masked view: masked, nothing written.
        masked = S.GetOrderRequest(order_id=order.id, personal_data=S.PERSONAL_DATA_VIEW_MASKED)
        got = (await stub.GetOrder(masked, metadata=REVIEWER)).order
        assert got.customer.phone == "+86139****5678"
        assert await reads(order_id=order.id) == before
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(
                S.GetOrderRequest(order_id=order.id, personal_data=7), metadata=REVIEWER
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(details(err.value)[1]) == {"personal_data"}
        # Clear reads: one row per order shown, newest first.
        await stub.GetOrder(S.GetOrderRequest(order_id=order.id), metadata=REVIEWER)
        await stub.ListOrders(S.ListOrdersRequest(), metadata=CLERK)
        assert await reads(order_id=order.id) == [
            (order.id, "clerk.zhang", ["clerk"], "ListOrders"),
            (order.id, "reviewer.li", ["reviewer"], "GetOrder"),
            (order.id, "clerk.zhang", ["clerk"], "CreateOrder"),
        ]
        assert await reads(principal="reviewer.li") == [
            (order.id, "reviewer.li", ["reviewer"], "GetOrder")
        ]
        assert {r[0] for r in await reads(principal="clerk.zhang", order_id=other.id)} == {other.id}

        # A watch: its first answer is a clear read too.
        watch = stub.WatchOrders(S.WatchOrdersRequest(order_ids=[other.id]), metadata=CLERK)
        first = await watch.read()
        assert first.order.customer.phone == "+8613912345678"
        watch.cancel()
        assert (await reads(order_id=other.id))[0][3] == "WatchOrders"

        # Time range and pages.
        now = datetime.now(UTC) + timedelta(minutes=5)
        window = {"read_from": Timestamp(), "read_before": Timestamp()}
        window["read_from"].FromDatetime(started)
        window["read_before"].FromDatetime(now)
        everything = await reads(**window)
        assert len(everything) == 6
        past = Timestamp()
        past.FromDatetime(started)
        assert await reads(read_before=past) == []
        paged: list[tuple[str, str, list[str], str]] = []
        token = ""
        while True:
            reply = await stub.ListPiiReads(
                S.ListPiiReadsRequest(page_size=3, page_token=token, **window), metadata=AUDITOR
            )
            paged += [(r.order_id, r.principal, list(r.roles), r.rpc) for r in reply.reads]
            assert all(r.read_at.ToDatetime(UTC) >= started for r in reply.reads)
            token = reply.next_page_token
            if not token:
                break
        assert paged == everything

        # Only auditors read the audit; a token of another filter is refused.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListPiiReads(S.ListPiiReadsRequest(), metadata=CLERK)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            first_page = await stub.ListPiiReads(
                S.ListPiiReadsRequest(page_size=1), metadata=AUDITOR
            )
            await stub.ListPiiReads(
                S.ListPiiReadsRequest(page_token=first_page.next_page_token, order_id=order.id),
                metadata=AUDITOR,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(details(err.value)[1]) == {"page_token"}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListPiiReads(
                S.ListPiiReadsRequest(read_from=window["read_before"], read_before=past),
                metadata=AUDITOR,
            )
        assert set(details(err.value)[1]) == {"read_before"}


async def test_a_watch_audits_an_order_once_until_its_personal_data_changes(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(db_url, nats_server.url, tmp_path, f"k1: {K1}\n", "k1")
    async with serving(build(settings)) as address, grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        order = await create(stub, create_request("req-watch", documents=[]))  # pending

        async def watch_reads() -> int:
            reply = await stub.ListPiiReads(
                S.ListPiiReadsRequest(order_id=order.id), metadata=AUDITOR
            )
            return sum(r.rpc == "WatchOrders" for r in reply.reads)

        async def amend(etag: str, paths: list[str], **fields: object) -> order_pb2.Order:
            reply = await stub.AmendOrder(
                S.AmendOrderRequest(
                    order_id=order.id,
                    etag=etag,
                    order=order_pb2.Order(**fields),  # type: ignore[arg-type]
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                ),
                metadata=CLERK,
            )
            return reply.order

        watch = stub.WatchOrders(S.WatchOrdersRequest(order_ids=[order.id]), metadata=CLERK)
        first = (await watch.read()).order
        assert await watch_reads() == 1
        # A change that shows the same personal data again: not a new read.
        planned = await amend(first.etag, ["plan"], plan="fiber-1000m")
        assert (await watch.read()).order.plan == "fiber-1000m"
        assert await watch_reads() == 1
        # The customer's phone amended: the stream shows new personal data, a new read.
        customer = order_pb2.Customer()
        customer.CopyFrom(planned.customer)
        customer.phone = "+8613987654321"
        await amend(planned.etag, ["customer.phone"], customer=customer)
        assert (await watch.read()).order.customer.phone == "+8613987654321"
        assert await watch_reads() == 2
        watch.cancel()
