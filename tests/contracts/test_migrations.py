"""Each service's Alembic migrations build exactly the tables its models declare, on SQLite and
on PostgreSQL: a model changed without a migration (or the reverse) fails here."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from orderline_runtime.database import Database
from orderline_runtime.migrations import upgrade_to_head

PACKAGES = {
    "intake": "orderline_intake",
    "provisioning": "orderline_provisioning",
    "device-monitor": "orderline_device_monitor",
    "archive": "orderline_archive",
    "reporting": "orderline_reporting",
}


@pytest.mark.parametrize("service", sorted(PACKAGES))
async def test_migrations_match_the_models(service: str, db_url: str) -> None:
    package = importlib.import_module(PACKAGES[service])
    metadata: MetaData = importlib.import_module(f"{package.__name__}.adapters.tables").metadata
    await upgrade_to_head(Path(package.__file__).parent / "migrations", db_url)

    def drift(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    db = Database(db_url)
    try:
        async with db.reading() as conn:
            differences = await conn.run_sync(drift)
    finally:
        await db.dispose()
    assert differences == []
