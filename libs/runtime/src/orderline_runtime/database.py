"""One database per service (SQLAlchemy 2, async): a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

from orderline_runtime.errors import Unavailable

READ_ONLY = "orderline_read_only"


class Database:
    def __init__(self, url: str, *, lock_timeout_seconds: float = 5.0) -> None:
        self.url = url
        self.lock_timeout_seconds = lock_timeout_seconds
        # Set when a write failed for want of the database (not a constraint): from then on the
        # health probe also checks that a write could start, until one can.
        self._writes_failing = False
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": lock_timeout_seconds}
        else:
            kwargs.update(
                pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=lock_timeout_seconds
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # SQLite admits one writer. Left to itself, each waiting connection polls the lock
        # with sleeps growing to 100 ms, in no order: under load the waits add up and some
        # writers starve past the timeout. Writers of this process take turns here instead, first
        # come first served, and SQLite's busy timeout is left for other processes.
        self._write_turn: asyncio.Lock | None = None
        if self.is_sqlite:
            self.sqlite_path = parsed.database or ":memory:"
            self._write_turn = asyncio.Lock()
            _configure_sqlite(self.engine, busy_timeout_ms=int(lock_timeout_seconds * 1000))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in one transaction: committed when the block ends, rolled back on
        error. A write that cannot get its turn within the lock timeout is `Unavailable`."""
        async with self._turn():
            try:
                async with self.engine.begin() as conn:
                    yield conn
            except DBAPIError as exc:
                if not isinstance(exc, IntegrityError):
                    self._writes_failing = True
                raise
            self._writes_failing = False

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._write_turn is None:
            yield
            return
        try:
            async with asyncio.timeout(self.lock_timeout_seconds):
                await self._write_turn.acquire()
        except TimeoutError:
            # Busy, not down: the health probe stays SERVING.
            raise Unavailable(
                f"the database is busy: no turn to write within {self.lock_timeout_seconds:g} s",
                reason="DATABASE_BUSY",
            ) from None
        try:
            yield
        finally:
            self._write_turn.release()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A session for reads only, all from one snapshot: on SQLite a deferred transaction
        (it does not take the write lock), on PostgreSQL REPEATABLE READ."""
        options: dict[str, Any] = {READ_ONLY: True}
        if self.is_postgres:
            options["isolation_level"] = "REPEATABLE READ"
        async with self.engine.connect() as conn:
            await conn.execution_options(**options)
            yield conn

    async def ping(self, limit_seconds: float = 2.0) -> bool:
        try:
            # Read-only: on SQLite a probe must not queue for the write lock behind a long
            # transaction (and report a busy database as down).
            async with asyncio.timeout(limit_seconds), self.engine.connect() as conn:
                await conn.execution_options(**{READ_ONLY: True})
                await conn.execute(text("SELECT 1"))
            if self._writes_failing and self.is_sqlite:
                # Reads work beside a foreign write lock (WAL); writes do not. Only probed
                # after a write failed, so a busy but healthy database never flaps.
                path, limit = self.sqlite_path, limit_seconds
                return await asyncio.to_thread(_sqlite_write_possible, path, limit)
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_write_possible(path: str, limit_seconds: float) -> bool:
    """Whether a write transaction can start within the limit (another process may hold the
    lock); takes the lock for an instant and writes nothing."""
    try:
        conn = sqlite3.connect(path, timeout=limit_seconds, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    # WAL lets readers run beside the writer. BEGIN IMMEDIATE takes the write lock when a
    # transaction starts, so a read-then-write transaction never fails half-way with
    # SQLITE_BUSY_SNAPSHOT; busy_timeout makes a second writer wait instead of failing.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def dialect_of(session: AsyncConnection) -> str:
    """ "postgresql" or "sqlite": for repositories (adapters) only, never for use cases."""
    return session.dialect.name


S = TypeVar("S", bound=Select[Any])


def skip_locked(stmt: S, session: AsyncConnection) -> S:
    """Locks the selected rows so that other transactions skip them, where the database can
    (PostgreSQL: FOR UPDATE SKIP LOCKED). SQLite needs nothing: BEGIN IMMEDIATE already lets
    one writer at a time in."""
    if dialect_of(session) == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt
