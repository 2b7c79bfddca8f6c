"""SQLite statements run on the event loop's own thread.

The async SQLite driver (aiosqlite) hands every statement to a thread of its own and waits
for the answer through the event loop: about 270 µs of CPU per statement on the benchmark
machine against 70 µs for the same SQLAlchemy statement run directly (docs/performance.md).
A service's SQLite statements are short point reads and writes on a local file, and with WAL
and `synchronous=NORMAL` a commit does not wait for the disk, so running them where they are
issued costs the loop less than handing them off does. Writers of one process already take
turns (`Database._turn`), so a statement never waits for another writer of this process;
waiting for another process's write lock happens in `Database`, asleep on the loop, not here.

`InlineSqliteConnection` offers the part of `AsyncConnection` that repositories use
(`orderline_runtime.database.SqlConnection`), over a synchronous SQLAlchemy connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from sqlalchemy.engine import Connection, CursorResult, Dialect, ScalarResult
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.util.typing import TupleAny, TypeVarTuple, Unpack

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


class InlineSqliteConnection:
    """One connection in one transaction; statements run as they are awaited."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    @overload
    async def execute(
        self, statement: TypedReturnsRows[Unpack[Ts]], parameters: Any = None
    ) -> CursorResult[Unpack[Ts]]: ...

    @overload
    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[Unpack[TupleAny]]: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[Unpack[TupleAny]]:
        return self.sync_connection.execute(statement, parameters)

    @overload
    async def scalars(
        self, statement: TypedReturnsRows[T], parameters: Any = None
    ) -> ScalarResult[T]: ...

    @overload
    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]: ...

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return self.sync_connection.scalars(statement, parameters)

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self.sync_connection, *args, **kwargs)
