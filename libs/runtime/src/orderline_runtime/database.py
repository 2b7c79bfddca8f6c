"""One database per service (SQLAlchemy 2): a SQLite file by default, PostgreSQL by URL.

PostgreSQL is reached through asyncpg (`AsyncConnection`); SQLite statements run on the event
loop's thread (`sqlite_inline`). Repositories see either through `SqlConnection`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine, ScalarResult, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.util.typing import TupleAny, TypeVarTuple, Unpack

from orderline_runtime.errors import Unavailable
from orderline_runtime.logs import get_logger
from orderline_runtime.sqlite_inline import InlineSqliteConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# How long one SQLite statement may block the loop waiting for another process's lock. Waiting
# for the write lock itself happens asleep (`Database._begin_inline`), so this stays short.
SQLITE_BUSY_TIMEOUT_MS = 20
# Open SQLite connections kept between transactions (more are opened when needed).
IDLE_SQLITE_CONNECTIONS = 8

log = get_logger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


class SqlConnection(Protocol):
    """A connection in one transaction, as repositories and the runtime's adapters use it:
    SQLAlchemy's `AsyncConnection` (PostgreSQL) or `InlineSqliteConnection` (SQLite)."""

    @property
    def dialect(self) -> Dialect: ...

    @overload
    async def execute(
        self, statement: TypedReturnsRows[Unpack[Ts]], parameters: Any = None
    ) -> CursorResult[Unpack[Ts]]: ...

    @overload
    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[Unpack[TupleAny]]: ...

    @overload
    async def scalars(
        self, statement: TypedReturnsRows[T], parameters: Any = None
    ) -> ScalarResult[T]: ...

    @overload
    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]: ...

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


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
        self._async_engine: AsyncEngine | None = None
        self._inline: Engine | None = None
        self._idle: list[Connection] = []
        if self.is_sqlite:
            if not parsed.database or parsed.database == ":memory:":
                raise ValueError("SQLite needs a file: sqlite+aiosqlite:///<path>")
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # The pool never makes a caller wait (it would block the loop): beyond the kept
            # connections it opens more, which is cheap for a file.
            self._inline = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                poolclass=QueuePool,
                pool_size=8,
                max_overflow=-1,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
        else:
            # Imported here: it brings the ORM along, which a SQLite process never needs (idle
            # memory, docs/performance.md).
            from sqlalchemy.ext.asyncio import create_async_engine

            self._async_engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=lock_timeout_seconds,
            )
        # SQLite admits one writer. Left to itself, each waiting connection polls the lock
        # with sleeps growing to 100 ms, in no order: under load the waits add up and some
        # writers starve past the timeout. Writers of this process take turns here instead, first
        # come first served, and SQLite's busy timeout is left for other processes.
        self._write_turn: asyncio.Lock | None = None
        if self.is_sqlite:
            self.sqlite_path = parsed.database or ":memory:"
            self._write_turn = asyncio.Lock()
            assert self._inline is not None
            _configure_sqlite(self._inline, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlConnection]:
        """A connection in one transaction: committed when the block ends, rolled back on
        error. A write that cannot get its turn within the lock timeout is `Unavailable`."""
        async with self._turn():
            try:
                if self._inline is not None:
                    async with self._inline_transaction(read_only=False) as inline:
                        yield inline
                else:
                    assert self._async_engine is not None
                    async with self._async_engine.begin() as conn:
                        yield conn
            except DBAPIError as exc:
                if not isinstance(exc, IntegrityError):
                    self._writes_failing = True
                raise
            self._writes_failing = False

    @asynccontextmanager
    async def _inline_transaction(self, *, read_only: bool) -> AsyncIterator[SqlConnection]:
        conn = await self._begin_inline(read_only)
        reusable = False
        try:
            yield InlineSqliteConnection(conn)
            if read_only:
                conn.rollback()
            else:
                conn.commit()
            reusable = True
        except BaseException:
            try:
                conn.rollback()
                reusable = True
            except Exception:
                log.warning("rollback failed; the connection is closed", exc_info=True)
            raise
        finally:
            self._put_back(conn) if reusable else conn.close()

    async def _begin_inline(self, read_only: bool) -> Connection:
        """A connection with its transaction begun. Another process holding the write lock
        is waited for asleep, in growing steps, up to the lock timeout; then SQLite's
        "database is locked" error is raised (as a DBAPIError, like any driver error)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.lock_timeout_seconds
        pause = 0.002
        while True:
            conn = self._take()
            # SQLAlchemy's transaction is bookkeeping only (pysqlite begins nothing itself);
            # the BEGIN goes straight to the driver, past the execution machinery.
            conn.begin()
            try:
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "BEGIN" if read_only else "BEGIN IMMEDIATE"
                )
                return conn
            except sqlite3.OperationalError as exc:
                conn.rollback()
                self._put_back(conn)
                if not _is_busy(exc) or loop.time() + pause > give_up:
                    raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _take(self) -> Connection:
        """An open connection between transactions: reusing one skips the pool's check-out,
        check-in and reset, which cost as much as a short transaction's statements."""
        if self._idle:
            return self._idle.pop()
        assert self._inline is not None
        return self._inline.connect()

    def _put_back(self, conn: Connection) -> None:
        if len(self._idle) < IDLE_SQLITE_CONNECTIONS and not conn.invalidated:
            self._idle.append(conn)
        else:
            conn.close()

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
    async def reading(self) -> AsyncIterator[SqlConnection]:
        """A session for reads only, all from one snapshot: on SQLite a deferred transaction
        (it does not take the write lock), on PostgreSQL REPEATABLE READ."""
        if self._inline is not None:
            async with self._inline_transaction(read_only=True) as inline:
                yield inline
            return
        assert self._async_engine is not None
        async with self._async_engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    async def ping(self, limit_seconds: float = 2.0) -> bool:
        try:
            # Read-only: on SQLite a probe must not queue for the write lock behind a long
            # transaction (and report a busy database as down).
            async with asyncio.timeout(limit_seconds), self.reading() as conn:
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
        while self._idle:
            self._idle.pop().close()
        if self._inline is not None:
            self._inline.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


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


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    # WAL lets readers run beside the writer. BEGIN IMMEDIATE takes the write lock when a
    # transaction starts, so a read-then-write transaction never fails half-way with
    # SQLITE_BUSY_SNAPSHOT; busy_timeout makes a second writer wait instead of failing.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def dialect_of(session: SqlConnection) -> str:
    """ "postgresql" or "sqlite": for repositories (adapters) only, never for use cases."""
    return session.dialect.name
