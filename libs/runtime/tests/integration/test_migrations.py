"""A service's Alembic migrations, run through `run_env` by `upgrade_to_head`, create the outbox
and the inbox exactly as the runtime's table definitions describe them, on both databases."""

from __future__ import annotations

from pathlib import Path

from _runtime_support import make_schema, session_units
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from orderline.events.v1 import order_events_pb2
from orderline_runtime.database import Database
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.migrations import upgrade_to_head

MIGRATIONS = Path(__file__).parent.parent / "fixtures" / "migrations"


async def test_upgrade_to_head_creates_outbox_and_inbox_matching_the_runtime_tables(
    db_url: str,
) -> None:
    await upgrade_to_head(MIGRATIONS, db_url)
    await upgrade_to_head(MIGRATIONS, db_url)  # at head already: nothing to do, no error

    schema = make_schema()
    db = Database(db_url)
    try:

        def check(conn: Connection) -> None:
            inspector = inspect(conn)
            assert {"outbox", "inbox", "effects", "alembic_version"} <= set(
                inspector.get_table_names()
            )
            assert "ix_outbox_sent_at" in {i["name"] for i in inspector.get_indexes("outbox")}
            assert inspector.get_pk_constraint("inbox")["constrained_columns"] == [
                "consumer",
                "event_id",
            ]
            # What the migration built is what the services' metadata declares.
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
            assert diff == []

        async with db.reading() as conn:
            await conn.run_sync(check)

        # The sequence numbers rows (the relay's order) on both databases.
        outbox = Outbox("intake", schema.outbox)
        async with session_units(db, outbox)() as uow:
            for n in range(3):
                uow.emit(order_events_pb2.OrderCreated(order_id=f"O-{n}"))
        async with db.transaction() as session:
            seqs = (await session.execute(select(schema.outbox.c.seq))).scalars().all()
        assert sorted(seqs) == [1, 2, 3]
    finally:
        await db.dispose()
