"""Saving an order loaded for update writes only the columns that changed (issue #8): the row
it leaves is the row a write of every column leaves, on both databases, whatever changed; the
version still moves by one and a stale version is still a conflict. An order loaded without
opening its personal data (`open_pii=False`) opens it when read, to the same values, and saves
the same row as one opened at load."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from orderline_catalogue import load_catalogue
from orderline_intake.adapters.pii_crypto import PiiCipher, PiiError
from orderline_intake.adapters.repository import PII_COLUMNS, SqlOrderRepository
from orderline_intake.adapters.tables import metadata, orders
from orderline_intake.domain.customer_hash import CustomerHasher
from orderline_intake.domain.order import Customer, Document, NewOrder, Order, Relocation
from orderline_intake.domain.states import Trigger
from orderline_runtime.database import Database
from orderline_runtime.errors import Conflict

T0 = datetime(2026, 12, 7, 9, 0, 0, 250000, tzinfo=UTC)
K1 = bytes(range(32))
K2 = bytes(range(50, 82))
OLD_KEY = PiiCipher({"k1": K1}, "k1")
CIPHER = PiiCipher({"k1": K1, "k2": K2}, "k2")
HASHER = CustomerHasher(b"h" * 32, "h1")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    async with database.transaction() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def _order(order_id: str = "o-1") -> Order:
    sla = load_catalogue().get("relocation")
    assert sla is not None
    new = NewOrder(
        client_request_id=f"req-{order_id}",
        business_type="relocation",
        customer=Customer(
            "张伟", "+8613800138000", "11010519491231002X", "北京市朝阳区建国路88号", "zh-CN"
        ),
        device_id="CPE-0001",
        plan="fiber-500m",
        relocation=Relocation("北京市东城区东直门南大街1号", "北京市海淀区中关村大街27号"),
        documents=(Document("identity_copy", "a" * 64, 1234),),
    )
    order = Order.record(order_id, new, "clerk-li", T0, sla.sla)
    order.customer_hashes = HASHER.of(order.customer.phone, order.customer.id_number)
    order.apply(Trigger.APPROVE, "intake/auto-review", "AUTO_APPROVED_COMPLETE", T0)
    order.reach("review_approved", T0)
    return order


async def _row(db: Database, order_id: str) -> dict[str, Any]:
    """The stored row, the PII fields opened (their sealed text has a fresh nonce per seal)."""
    async with db.reading() as conn:
        row = dict(
            (await conn.execute(select(orders).where(orders.c.id == order_id))).mappings().one()
        )
    for clear, sealed in PII_COLUMNS.items():
        cipher = CIPHER if row["pii_key_id"] == "k2" else OLD_KEY
        row[sealed] = cipher.open(order_id, clear, row[sealed])
    return row


class CountingCipher(PiiCipher):
    """The test keyring, counting the values it opens."""

    def open(self, order_id: str, field_name: str, stored: str) -> str:
        OPENED.append(field_name)
        return super().open(order_id, field_name, stored)


OPENED: list[str] = []
COUNTING = CountingCipher({"k1": K1, "k2": K2}, "k2")


async def _save_changed(
    db: Database, order_id: str, change: Callable[[Order], None], *, open_pii: bool = True
) -> None:
    async with db.transaction() as conn:
        repo = SqlOrderRepository(conn, CIPHER)
        order = await repo.get(order_id, for_update=True, open_pii=open_pii)
        assert order is not None
        change(order)
        await repo.save(order)


async def _save_every_column(db: Database, order_id: str) -> None:
    """Writes the order as it is, every column (loaded without for_update: nothing kept)."""
    async with db.transaction() as conn:
        repo = SqlOrderRepository(conn, CIPHER)
        order = await repo.get(order_id)
        assert order is not None
        await repo.save(order)


def _reach(order: Order) -> None:
    order.reach("prechecks_passed", T0 + timedelta(seconds=3))


def _voucher(order: Order) -> None:
    order.reach("voucher_issued", T0 + timedelta(seconds=4))
    order.voucher_id = "V-1"


def _held(order: Order) -> None:
    order.apply(Trigger.HOLD, "provisioning", "DEVICE_ABNORMAL", T0 + timedelta(seconds=5))
    order.alarm_id = "A-1"


def _late(order: Order) -> None:
    assert order.raise_jeopardy(T0 + timedelta(days=60))


def _amended(order: Order) -> None:
    order.customer = replace(order.customer, phone="+8613900139000", address="上海市浦东新区")
    order.relocation = None
    order.customer_hashes = HASHER.of(order.customer.phone, order.customer.id_number)


def _rehashed(order: Order) -> None:
    order.customer_hashes = CustomerHasher(b"g" * 32, "h2").of(
        order.customer.phone, order.customer.id_number
    )


def _nothing(order: Order) -> None:
    pass


def _read_customer(order: Order) -> None:
    # Read (so opened when loaded lazily), not changed; the relocation left unread.
    assert order.customer.phone == "+8613800138000"
    order.reach("prechecks_passed", T0 + timedelta(seconds=3))


def _same_customer(order: Order) -> None:
    # Set to an equal value without reading the relocation.
    order.customer = replace(order.customer)


def _moved_only(order: Order) -> None:
    # The relocation set without the customer read.
    order.relocation = Relocation("北京市东城区东直门南大街1号", "上海市浦东新区")


def _renamed(order: Order) -> None:
    # A column of the customer's that is not sealed.
    order.customer = replace(order.customer, name="张伟伟")


@pytest.mark.parametrize("open_pii", [True, False], ids=["opened", "lazy"])
@pytest.mark.parametrize(
    "change",
    [
        _reach,
        _voucher,
        _held,
        _late,
        _amended,
        _rehashed,
        _nothing,
        _read_customer,
        _same_customer,
        _moved_only,
        _renamed,
    ],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("stored", ["sealed", "old_key", "clear"])
async def test_a_save_leaves_the_row_a_full_write_leaves(
    db: Database, change: Callable[[Order], None], stored: str, open_pii: bool
) -> None:
    async with db.transaction() as conn:
        first = SqlOrderRepository(conn, OLD_KEY if stored == "old_key" else CIPHER)
        await first.add(_order())
        if stored == "clear":  # as written before the sealed columns (migration 0008)
            order = _order()
            assert order.relocation is not None
            await conn.execute(
                update(orders)
                .where(orders.c.id == order.id)
                .values(
                    {
                        **{sealed: "" for sealed in PII_COLUMNS.values()},
                        "customer_phone": order.customer.phone,
                        "customer_id_number": order.customer.id_number,
                        "customer_address": order.customer.address,
                        "relocation_old_address": order.relocation.old_address,
                        "relocation_new_address": order.relocation.new_address,
                        "pii_key_id": "",
                    }
                )
            )
    before = await _row(db, "o-1")

    await _save_changed(db, "o-1", change, open_pii=open_pii)
    saved = await _row(db, "o-1")
    await _save_every_column(db, "o-1")
    full = await _row(db, "o-1")

    assert saved["version"] == before["version"] + 1
    assert full["version"] == saved["version"] + 1
    full["version"] = saved["version"]
    assert saved == full
    assert saved["pii_key_id"] == "k2"
    assert not any(saved[clear] for clear in PII_COLUMNS)


@pytest.mark.parametrize("open_pii", [True, False], ids=["opened", "lazy"])
async def test_a_milestone_leaves_the_sealed_fields_alone(db: Database, open_pii: bool) -> None:
    async with db.transaction() as conn:
        await SqlOrderRepository(conn, CIPHER).add(_order())
    async with db.reading() as conn:
        sealed = (await conn.execute(select(*(orders.c[s] for s in PII_COLUMNS.values())))).one()
    await _save_changed(db, "o-1", _reach, open_pii=open_pii)
    async with db.reading() as conn:
        after = (await conn.execute(select(*(orders.c[s] for s in PII_COLUMNS.values())))).one()
    assert after == sealed


async def test_a_stale_version_is_still_a_conflict(db: Database) -> None:
    async with db.transaction() as conn:
        await SqlOrderRepository(conn, CIPHER).add(_order())
    with pytest.raises(Conflict):
        async with db.transaction() as conn:
            repo = SqlOrderRepository(conn, CIPHER)
            loaded = await repo.get("o-1", for_update=True)
            assert loaded is not None
            other = await SqlOrderRepository(conn, CIPHER).get("o-1")
            assert other is not None
            await SqlOrderRepository(conn, CIPHER).save(other)  # another writer: version + 1
            _reach(loaded)
            await repo.save(loaded)


async def test_a_lazy_load_opens_nothing_until_read_and_then_the_same_values(
    db: Database,
) -> None:
    async with db.transaction() as conn:
        await SqlOrderRepository(conn, CIPHER).add(_order())
    OPENED.clear()
    async with db.transaction() as conn:
        repo = SqlOrderRepository(conn, COUNTING)
        opened = await repo.get("o-1", for_update=True)
        assert opened is not None
        assert len(OPENED) == 5
        OPENED.clear()
        lazy = await repo.get("o-1", for_update=True, open_pii=False)
        assert lazy is not None
        _reach(lazy)
        await repo.save(lazy)
        assert OPENED == []  # loaded, changed and saved without opening anything
        # Read, they are the values an opened load has; each field opened once.
        assert lazy.customer == opened.customer
        assert lazy.relocation == opened.relocation
        assert lazy.customer.address == _order().customer.address
        assert sorted(OPENED) == sorted(PII_COLUMNS)


async def test_a_lazily_loaded_order_equals_an_order_of_its_values(db: Database) -> None:
    async with db.transaction() as conn:
        await SqlOrderRepository(conn, CIPHER).add(_order())
    async with db.reading() as conn:
        repo = SqlOrderRepository(conn, CIPHER)
        lazy = await repo.get("o-1", open_pii=False)
        opened = await repo.get("o-1")
    assert lazy is not None and opened is not None
    plain = Order(**{f.name: getattr(opened, f.name) for f in fields(Order)})
    assert type(plain) is Order
    # Shown as an Order is; what is not opened yet stays sealed.
    assert repr(opened) == repr(plain)
    assert repr(lazy) == repr(plain).replace(repr(plain.customer), "<sealed>").replace(
        repr(plain.relocation), "<sealed>"
    )
    assert lazy == opened and opened == lazy
    assert lazy == plain and plain == lazy
    assert copy.deepcopy(lazy) == plain
    assert replace(lazy, plan="other") != plain
    plain.reach("prechecks_passed", T0)
    assert lazy != plain and plain != lazy


async def test_a_value_that_does_not_open_fails_where_it_is_read(db: Database) -> None:
    async with db.transaction() as conn:
        await SqlOrderRepository(conn, CIPHER).add(_order())
        # Another order's sealed phone: it does not authenticate for this one.
        await conn.execute(
            update(orders)
            .where(orders.c.id == "o-1")
            .values(customer_phone_sealed=CIPHER.seal("o-2", "customer_phone", "+8613800000000"))
        )
    async with db.reading() as conn:
        repo = SqlOrderRepository(conn, CIPHER)
        with pytest.raises(PiiError, match="customer_phone of order o-1"):
            await repo.get("o-1")
        lazy = await repo.get("o-1", open_pii=False)
    assert lazy is not None
    assert "customer=<sealed>" in repr(lazy)  # a log line or a traceback's locals: no error
    assert lazy.relocation is not None  # what opens still opens
    with pytest.raises(PiiError, match="customer_phone of order o-1"):
        _ = lazy.customer
