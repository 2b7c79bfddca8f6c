"""SQLite statements run on the event loop's own thread, the hot ones past SQLAlchemy's
execution machinery.

The async SQLite driver (aiosqlite) hands every statement to a thread of its own and waits
for the answer through the event loop: about 270 µs of CPU per statement on the benchmark
machine against 70 µs for the same SQLAlchemy statement run directly (docs/performance.md).
A service's SQLite statements are short point reads and writes on a local file, and with WAL
and `synchronous=NORMAL` a commit does not wait for the disk, so running them where they are
issued costs the loop less than handing them off does. Writers of one process already take
turns (`Database._turn`), so a statement never waits for another writer of this process;
waiting for another process's write lock happens in `Database`, asleep on the loop, not here.

Even run directly, SQLAlchemy spends about twice as long around a short statement as SQLite
spends in it: cache-key lookup, parameter construction, an execution context and a cursor
result per call. A statement object executed a second time is a module constant of the hot
path (`bindparam`s, built once), so from then on it runs from a plan compiled once for its
parameter names: the SQL text, each parameter's type processor and each result column's,
handed straight to `sqlite3`. Rows come back as SQLAlchemy rows (`IteratorResult`), DML as a
result with `rowcount`, and driver errors as SQLAlchemy's (`IntegrityError`, ...), so
repositories cannot tell the two paths apart. What a plan cannot reproduce exactly (Python-side
column defaults, RETURNING, expanding or callable parameters, textual SQL) keeps going
through SQLAlchemy.

`InlineSqliteConnection` offers the part of `AsyncConnection` that repositories use
(`orderline_runtime.database.SqlConnection`), over a synchronous SQLAlchemy connection.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar, cast, overload

from sqlalchemy.engine import Connection, CursorResult, Dialect, ScalarResult
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.util.typing import TupleAny, TypeVarTuple, Unpack

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")

Processor = Callable[[Any], Any] | None
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class StatementPlan:
    """One statement compiled once for one set of parameter names (and, for an expanding
    `IN`, one length of each list)."""

    sql: str
    # Per `?` in `sql`: parameter name, the list index for an expanding parameter's element
    # (-1 for a plain one), the statement's own value when the caller gives none (`_MISSING`
    # when it must be given), the type's bind processor.
    binds: tuple[tuple[str, int, Any, Processor], ...]
    # Row-returning statements only: the result's keys and each column's result processor.
    metadata: SimpleResultMetaData | None
    result_processors: tuple[Processor, ...]

    def parameters(self, given: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The positional parameters, or None when one is missing (SQLAlchemy then raises
        its own error for it)."""
        out = []
        for name, index, default, process in self.binds:
            value = given.get(name, default)
            if value is _MISSING:
                return None
            if index >= 0:
                value = value[index]
            out.append(process(value) if process is not None else value)
        return tuple(out)


class ExpandingPlans:
    """A statement with expanding `IN` parameters: one plan per length of its lists, since
    the SQL text has one `?` per element."""

    def __init__(self, compiled: SQLCompiler, expanding: tuple[str, ...], base: StatementPlan):
        self._compiled = compiled
        self._expanding = expanding
        self._base = base
        self._by_sizes: dict[tuple[int, ...], StatementPlan] = {}

    def plan_for(self, given: Mapping[str, Any]) -> StatementPlan | None:
        try:
            sizes = tuple(len(given[name]) for name in self._expanding)
        except (KeyError, TypeError):
            return None
        try:
            return self._by_sizes[sizes]
        except KeyError:
            pass
        state = self._compiled.construct_expanded_state(given)
        element_of = {
            expanded: (name, index)
            for name, names in state.parameter_expansion.items()
            for index, expanded in enumerate(names)
        }
        defaults = {name: default for name, _, default, _ in self._base.binds}
        processors = self._compiled._bind_processors
        binds: list[tuple[str, int, Any, Processor]] = []
        for position in state.positiontup or ():
            name, index = element_of.get(position, (position, -1))
            processor = cast(Processor, processors.get(name))
            binds.append((name, index, defaults.get(name, _MISSING), processor))
        plan = StatementPlan(
            state.statement, tuple(binds), self._base.metadata, self._base.result_processors
        )
        self._by_sizes[sizes] = plan
        return plan


class DmlResult:
    """What an INSERT, UPDATE or DELETE run from a plan returns: its row count."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


_ELIGIBLE = (Select, Insert, Update, Delete)


def compile_plan(
    statement: Executable, dialect: Dialect, keys: Sequence[str], many: bool
) -> StatementPlan | ExpandingPlans | None:
    """A plan for `statement` with parameters named `keys`, or None when running it straight
    would not do exactly what SQLAlchemy does."""
    if not isinstance(statement, _ELIGIBLE):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys), for_executemany=many)
    if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
        return None
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.effective_returning
        or compiled.literal_execute_params
        or compiled.escaped_bind_names
    ):
        return None
    expanding = tuple(sorted(b.key for b in compiled.post_compile_params))
    if expanding and (
        many or any(not b.expanding or b.type._is_tuple_type for b in compiled.post_compile_params)
    ):
        return None
    processors = compiled._bind_processors
    binds: list[tuple[str, int, Any, Processor]] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if bind.callable is not None:
            return None
        default = _MISSING if (bind.required or name in keys) else bind.value
        # sqlite's processors are single callables (the sequence form is for tuple binds).
        binds.append((name, -1, default, cast(Processor, processors.get(name))))
    metadata = None
    result_processors: tuple[Processor, ...] = ()
    if isinstance(statement, Select):
        columns = compiled._result_columns
        names = [c[0] for c in columns]
        if not columns or len(set(names)) != len(names) or compiled._textual_ordered_columns:
            return None
        metadata = SimpleResultMetaData(names)
        result_processors = tuple(c[3]._cached_result_processor(dialect, None) for c in columns)
    plan = StatementPlan(compiled.string, tuple(binds), metadata, result_processors)
    return ExpandingPlans(compiled, expanding, plan) if expanding else plan


class _Plans:
    """Plans by statement object. A statement is planned on its second execution: one built
    for a single call (values inline, a new object each time) never pays for a plan."""

    def __init__(self) -> None:
        self._by_statement: weakref.WeakKeyDictionary[
            Executable, dict[tuple[tuple[str, ...], bool], StatementPlan | ExpandingPlans | None]
        ] = weakref.WeakKeyDictionary()

    def get(
        self, statement: Executable, dialect: Dialect, keys: tuple[str, ...], many: bool
    ) -> StatementPlan | ExpandingPlans | None:
        try:
            plans = self._by_statement[statement]
        except KeyError:
            self._by_statement[statement] = {}
            return None
        except TypeError:  # not weak-referenceable
            return None
        try:
            return plans[(keys, many)]
        except KeyError:
            plan = plans[(keys, many)] = compile_plan(statement, dialect, keys, many)
            return plan


PLANS = _Plans()


class InlineSqliteConnection:
    """One connection in one transaction; statements run as they are awaited."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self._dialect = connection.dialect
        self._driver: sqlite3.Connection = cast(
            sqlite3.Connection, connection.connection.dbapi_connection
        )

    @property
    def dialect(self) -> Dialect:
        return self._dialect

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
        result = self._run_planned(statement, parameters)
        if result is None:
            return self.sync_connection.execute(statement, parameters)
        # A planned result offers what repositories use of a CursorResult (rows, rowcount).
        # The type as a string: subscripting the generic would run on every statement.
        return cast("CursorResult[Unpack[TupleAny]]", result)

    def _run_planned(self, statement: Executable, parameters: Any) -> Any:
        if parameters is None:
            rows: Sequence[Mapping[str, Any]] = ()
            keys: tuple[str, ...] = ()
        elif isinstance(parameters, Mapping):
            rows = (parameters,)
            keys = tuple(parameters)
        elif isinstance(parameters, Sequence) and parameters:
            rows = parameters
            keys = tuple(parameters[0])
            if any(tuple(p) != keys for p in parameters):
                return None
        else:
            return None
        many = len(rows) > 1
        plan = PLANS.get(statement, self._dialect, keys, many)
        if isinstance(plan, ExpandingPlans):
            plan = plan.plan_for(rows[0] if rows else {})
        if plan is None:
            return None
        try:
            values = [plan.parameters(p) for p in rows] if rows else [plan.parameters({})]
        except Exception:
            # A type refused a value (a naive datetime, say): SQLAlchemy's path raises its
            # StatementError for it.
            return None
        planned = [v for v in values if v is not None]
        if len(planned) != len(values):
            return None
        if many:
            try:
                cursor = self._driver.executemany(plan.sql, planned)
            except sqlite3.Error as exc:
                raise _wrapped(plan.sql, planned, exc) from exc
            return DmlResult(cursor.rowcount)
        one = planned[0]
        try:
            cursor = self._driver.execute(plan.sql, one)
            if plan.metadata is None:
                return DmlResult(cursor.rowcount)
            fetched = cursor.fetchall()
        except sqlite3.Error as exc:
            raise _wrapped(plan.sql, one, exc) from exc
        procs = plan.result_processors
        out = [
            tuple([p(v) if p is not None else v for p, v in zip(procs, r, strict=True)])
            for r in fetched
        ]
        return IteratorResult(plan.metadata, iter(out))

    @overload
    async def scalars(
        self, statement: TypedReturnsRows[T], parameters: Any = None
    ) -> ScalarResult[T]: ...

    @overload
    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]: ...

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return (await self.execute(statement, parameters)).scalars()

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self.sync_connection, *args, **kwargs)


def _wrapped(sql: str, params: Any, exc: sqlite3.Error) -> DBAPIError:
    # The same exception class SQLAlchemy would raise (IntegrityError for a unique violation,
    # OperationalError for a busy database), so callers catch one thing on either path.
    return cast(DBAPIError, DBAPIError.instance(sql, params, exc, sqlite3.Error))
