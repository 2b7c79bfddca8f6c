"""Micro-benchmark: one short SQLite statement through SQLAlchemy's execution and through a
plan (`orderline_runtime.sqlite_inline`), on the same connection and file.

    python -m bench.statements [--n 5000]

Prints µs of wall time per statement (one process, nothing else running in it). The pipeline
benchmark (`make bench`) is the judge of a change; this says where a statement's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy import update as sql_update

from orderline_runtime.columns import UTCDateTime
from orderline_runtime.database import Database
from orderline_runtime.sqlite_inline import InlineSqliteConnection

metadata = MetaData()
# The shape of a hot row: an order with a score of columns, a timestamp and a JSON list.
rows = Table(
    "rows",
    metadata,
    Column("id", String(36), primary_key=True),
    *(Column(f"text_{i}", String(64), nullable=False) for i in range(18)),
    Column("at", UTCDateTime, nullable=False),
    Column("documents", JSON, nullable=False),
    Column("version", Integer, nullable=False),
)
BY_ID = select(rows).where(rows.c.id == bindparam("id"))
AMONG = select(rows.c.id, rows.c.version).where(rows.c.id.in_(bindparam("ids", expanding=True)))
SAVE = sql_update(rows).where(rows.c.id == bindparam("key"))
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def row(i: int) -> dict[str, Any]:
    texts = {f"text_{k}": f"value {k} of {i}" for k in range(18)}
    docs = [{"type": "identity_copy", "sha256": "ab" * 32, "size_bytes": 1000}]
    return {"id": f"r{i}", **texts, "at": AT, "documents": docs, "version": 0}


async def per_statement(n: int, run: Callable[[int], Awaitable[Any]]) -> float:
    for i in range(50):  # warm: compile, plan, caches
        await run(i)
    start = time.perf_counter()
    for i in range(n):
        await run(i)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        async with db.transaction() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(rows), [row(i) for i in range(100)])
        async with db.transaction() as conn:
            assert isinstance(conn, InlineSqliteConnection)
            sync = conn.sync_connection
            # name: (statement, parameters of the i-th call, whether it returns rows)
            cases: dict[str, tuple[Any, Callable[[int], Any], bool]] = {
                "point select (22 columns)": (BY_ID, lambda i: {"id": f"r{i % 100}"}, True),
                "update by key (22 columns)": (
                    SAVE,
                    lambda i: {**row(i % 100), "key": f"r{i % 100}", "version": i},
                    False,
                ),
                "IN-select of 8 ids": (
                    AMONG,
                    lambda i: {"ids": [f"r{(i + k) % 100}" for k in range(8)]},
                    True,
                ),
            }
            print(f"{'statement':30s} {'SQLAlchemy':>12s} {'plan':>8s}")
            for name, (stmt, params, returns_rows) in cases.items():

                async def via_sqlalchemy(
                    i: int, stmt: Any = stmt, params: Any = params, rows_back: bool = returns_rows
                ) -> Any:
                    result = sync.execute(stmt, params(i))
                    return result.all() if rows_back else result

                async def via_plan(
                    i: int, stmt: Any = stmt, params: Any = params, rows_back: bool = returns_rows
                ) -> Any:
                    result = await conn.execute(stmt, params(i))
                    return result.all() if rows_back else result

                if returns_rows:  # a plan that read other rows would measure nothing
                    assert await via_plan(7) == await via_sqlalchemy(7), name
                sa = await per_statement(n, via_sqlalchemy)
                planned = await per_statement(n, via_plan)
                print(f"{name:30s} {sa:10.1f}µs {planned:6.1f}µs")
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    asyncio.run(main(parser.parse_args().n))
