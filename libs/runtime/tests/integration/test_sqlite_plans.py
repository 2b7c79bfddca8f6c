"""Hot SQLite statements run from a plan give what SQLAlchemy's own execution gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError

from orderline_runtime.columns import UTCDateTime
from orderline_runtime.database import Database
from orderline_runtime.sqlite_inline import PLANS, DmlResult

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", String, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("body", JSON, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("n", Integer, nullable=False),
)
defaulted = Table(
    "defaulted",
    metadata,
    Column("id", String, primary_key=True),
    Column("note", String, nullable=False, default=lambda: "from python"),
)

BY_ID = select(things).where(things.c.id == bindparam("id"))
FIRST_TWO = select(things.c.id).order_by(things.c.id).limit(2)
INSERT = insert(things)
BUMP = update(things).where(things.c.id == bindparam("key")).values(n=things.c.n + 1)
INSERT_DEFAULTED = insert(defaulted)
AMONG = (
    select(things.c.id, things.c.at)
    .where(things.c.id.in_(bindparam("ids", expanding=True)), things.c.n >= bindparam("least"))
    .order_by(things.c.id)
)
FLAG_AMONG = (
    update(things).where(things.c.id.in_(bindparam("ids", expanding=True))).values(flag=True)
)

AT = datetime(2026, 12, 6, 8, 30, tzinfo=UTC)


def thing(i: int) -> dict[str, Any]:
    return {"id": f"t{i}", "at": AT, "body": {"k": [i, "值"]}, "flag": i % 2 == 0, "n": i}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    async with database.transaction() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


async def test_a_statement_run_twice_is_planned_and_reads_the_same_rows(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT, [thing(1), thing(2), thing(3)])
        await conn.execute(INSERT, [thing(4), thing(5)])
    async with db.reading() as conn:
        first = (await conn.execute(BY_ID, {"id": "t2"})).mappings().first()
        second = (await conn.execute(BY_ID, {"id": "t2"})).mappings().first()
        top = (await conn.execute(FIRST_TWO)).scalars().all()
        top_again = (await conn.execute(FIRST_TWO)).scalars().all()
        missing = (await conn.execute(BY_ID, {"id": "nope"})).first()
    assert PLANS.get(BY_ID, db_dialect(db), ("id",), False) is not None
    assert first == second
    assert second is not None
    assert second["at"] == AT and second["at"].tzinfo is not None
    assert second["body"] == {"k": [2, "值"]}
    assert second["flag"] is True
    assert top == top_again == ["t1", "t2"]
    assert missing is None


async def test_expanding_lists_of_any_length_are_planned_per_length(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT, [thing(i) for i in range(1, 6)])
        flagged = await conn.execute(FLAG_AMONG, {"ids": ["t1", "t3", "nope"]})
        again = await conn.execute(FLAG_AMONG, {"ids": ["t5"]})
        none = await conn.execute(FLAG_AMONG, {"ids": []})
    assert (flagged.rowcount, again.rowcount, none.rowcount) == (2, 1, 0)
    async with db.reading() as conn:
        found = {}
        for ids in (["t1", "t2", "t3"], ["t2", "t4"], ["t4"], [], ["t2", "t4"]):
            rows = (await conn.execute(AMONG, {"ids": ids, "least": 2})).all()
            found[tuple(ids)] = [(r.id, r.at) for r in rows]
        flags = dict((await conn.execute(select(things.c.id, things.c.flag))).all())
    assert found == {
        ("t1", "t2", "t3"): [("t2", AT), ("t3", AT)],
        ("t2", "t4"): [("t2", AT), ("t4", AT)],
        ("t4",): [("t4", AT)],
        (): [],
    }
    assert flags == {"t1": True, "t2": True, "t3": True, "t4": True, "t5": True}


async def test_planned_writes_report_rowcounts_and_take_effect(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT, [thing(1), thing(2)])
        await conn.execute(INSERT, [thing(3), thing(4)])
        await conn.execute(BUMP, {"key": "t1"})
        hit = await conn.execute(BUMP, {"key": "t1"})
        miss = await conn.execute(BUMP, {"key": "nope"})
    assert isinstance(hit, DmlResult)
    assert (hit.rowcount, miss.rowcount) == (1, 0)
    async with db.reading() as conn:
        n = (await conn.execute(select(things.c.n).where(things.c.id == "t1"))).scalar_one()
    assert n == 3


async def test_a_planned_unique_violation_is_sqlalchemys_integrity_error(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT, thing(1))
        await conn.execute(INSERT, thing(2))
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(INSERT, thing(1))


async def test_python_side_defaults_and_bad_values_stay_with_sqlalchemy(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(INSERT_DEFAULTED, {"id": "a"})
        await conn.execute(INSERT_DEFAULTED, {"id": "b"})
    assert PLANS.get(INSERT_DEFAULTED, db_dialect(db), ("id",), False) is None
    async with db.reading() as conn:
        notes = (await conn.execute(select(defaulted.c.note))).scalars().all()
    assert notes == ["from python", "from python"]
    naive = {**thing(9), "at": datetime(2026, 12, 6, 8, 30)}
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as conn:
            await conn.execute(INSERT, thing(8))
            await conn.execute(INSERT, naive)
    with pytest.raises(StatementError):
        async with db.reading() as conn:
            await conn.execute(BY_ID, {"id": "t1"})
            await conn.execute(BY_ID, {})


def db_dialect(db: Database) -> Any:
    assert db._inline is not None
    return db._inline.dialect
