"""Upgrading a database with orders in it: an order recorded before migration 0002 reads back
after it, with a resident identity number, no relocation and no documents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

import orderline_intake
from orderline_intake.adapters.repository import SqlOrderRepository
from orderline_runtime.database import Database
from orderline_runtime.migrations import alembic_config, upgrade_to_head

MIGRATIONS = Path(orderline_intake.__file__).parent / "migrations"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def test_an_order_recorded_before_identities_reads_back_after_the_upgrade(
    db_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, db_url), "0001")
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
                {"at": AT},
            )
    finally:
        await db.dispose()

    await upgrade_to_head(MIGRATIONS, db_url)

    db = Database(db_url)
    try:
        async with db.reading() as conn:
            order = await SqlOrderRepository(conn).get("o-old")
    finally:
        await db.dispose()
    assert order is not None
    assert order.customer.id_number == "11010519491231002X"
    assert not order.customer.has_passport and order.customer.passport_country == ""
    assert order.customer.preferred_channel == "sms"
    assert order.relocation is None and order.documents == ()
