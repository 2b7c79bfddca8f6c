"""The database wrapper: health pings and reads never queue behind a long SQLite write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _runtime_support import Schema
from sqlalchemy import insert, select

from orderline_devtools.local import free_port
from orderline_runtime.database import Database


async def test_transaction_commits_or_rolls_back_as_a_whole(db: Database, schema: Schema) -> None:
    async with db.transaction() as session:
        await session.execute(insert(schema.effects).values(event_id="e1", note="kept"))
    try:
        async with db.transaction() as session:
            await session.execute(insert(schema.effects).values(event_id="e2", note="dropped"))
            raise RuntimeError("handler failed")
    except RuntimeError:
        pass
    async with db.reading() as session:
        notes = (await session.execute(select(schema.effects.c.note))).scalars().all()
    assert notes == ["kept"]
    assert await db.ping()


async def test_ping_and_reads_do_not_wait_for_a_long_sqlite_write(tmp_path: Path) -> None:
    from _runtime_support import make_schema

    schema = make_schema()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}")
    try:
        async with db.transaction() as conn:
            await conn.run_sync(schema.metadata.create_all)
        writing = asyncio.Event()
        release = asyncio.Event()

        async def long_write() -> None:
            async with db.transaction() as session:
                await session.execute(insert(schema.effects).values(event_id="e", note="slow"))
                writing.set()
                await release.wait()

        writer = asyncio.create_task(long_write())
        await asyncio.wait_for(writing.wait(), timeout=5)
        try:
            # A health probe during a slow handler must not report the database as down.
            assert await db.ping(limit_seconds=1.0)
            async with asyncio.timeout(1.0), db.reading() as session:
                assert (await session.execute(select(schema.effects.c.note))).all() == []
        finally:
            release.set()
            await writer
    finally:
        await db.dispose()


async def test_ping_reports_an_unreachable_database_within_its_limit() -> None:
    db = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await db.ping(limit_seconds=1.0)
        assert loop.time() - started < 3
    finally:
        await db.dispose()


async def test_a_foreign_sqlite_write_lock_fails_writes_as_unavailable_and_health_follows(
    tmp_path: Path,
) -> None:
    """Another process holding SQLite's write lock: reads still work, a write fails after the
    lock timeout with a DBAPIError (the edge maps it to UNAVAILABLE), and from then on the ping
    reports the database down until a write can start again."""
    import sqlite3

    from _runtime_support import make_schema
    from sqlalchemy.exc import DBAPIError

    schema = make_schema()
    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}", lock_timeout_seconds=0.5)
    try:
        async with db.transaction() as conn:
            await conn.run_sync(schema.metadata.create_all)
        assert await db.ping()

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DBAPIError):
                async with db.transaction() as session:
                    await session.execute(insert(schema.effects).values(event_id="e", note="x"))
            assert not await db.ping(limit_seconds=0.5)
            async with db.reading() as session:
                assert (await session.execute(select(schema.effects.c.note))).all() == []
        finally:
            other.execute("ROLLBACK")
            other.close()

        assert await db.ping()
        async with db.transaction() as session:
            await session.execute(insert(schema.effects).values(event_id="e", note="after"))
        async with db.reading() as session:
            assert (await session.execute(select(schema.effects.c.note))).scalars().all() == [
                "after"
            ]
    finally:
        await db.dispose()
