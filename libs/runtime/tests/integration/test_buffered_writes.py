"""Repositories that gather writes in memory have them written inside the transaction."""

from __future__ import annotations

import pytest
from _runtime_support import Schema, count_rows
from sqlalchemy import insert

from orderline_runtime.database import Database, SqlConnection
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.unit_of_work import SqlUnitOfWork


class GatheringEffects:
    """Notes effects in memory; writes them in one statement when flushed."""

    def __init__(self, session: SqlConnection, schema: Schema) -> None:
        self.session = session
        self.schema = schema
        self.notes: list[str] = []
        self.flushes = 0

    def note(self, text: str) -> None:
        self.notes.append(text)

    async def flush(self) -> None:
        self.flushes += 1
        if self.notes:
            rows = [{"event_id": f"e{i}", "note": n} for i, n in enumerate(self.notes)]
            await self.session.execute(insert(self.schema.effects), rows)
            self.notes.clear()


async def test_gathered_writes_commit_with_the_transaction_and_vanish_with_its_rollback(
    db: Database, schema: Schema
) -> None:
    outbox = Outbox("intake", schema.outbox)
    seen: list[GatheringEffects] = []

    def repos(session: SqlConnection) -> GatheringEffects:
        seen.append(GatheringEffects(session, schema))
        return seen[-1]

    async with SqlUnitOfWork(db, outbox, repos, producer="intake") as uow:
        uow.repos.note("one")
        uow.repos.note("two")
    assert await count_rows(db, schema.effects) == 2

    with pytest.raises(RuntimeError):
        async with SqlUnitOfWork(db, outbox, repos, producer="intake") as uow:
            uow.repos.note("lost")
            raise RuntimeError("the handler failed")
    assert await count_rows(db, schema.effects) == 2
    assert [r.flushes for r in seen] == [1, 0]

    async with SqlUnitOfWork(db, outbox, repos, producer="intake", read_only=True) as uow:
        uow.repos.note("a reader writes nothing")
    assert seen[-1].flushes == 0
