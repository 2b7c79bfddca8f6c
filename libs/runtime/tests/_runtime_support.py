"""Helpers shared by the runtime's tests (importable because conftest puts this folder on the
path): the test schema, the one wait helper, and reading what a stream holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from orderline.events.v1 import envelope_pb2
from orderline_devtools.waiting import eventually
from orderline_runtime.database import Database, SqlConnection
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.tables import add_messaging_tables
from orderline_runtime.unit_of_work import SqlUnitOfWork

# The runtime's tests await `wait_until(predicate, within=…, what=…)`: a truthy value ends it.
wait_until = eventually


@dataclass
class Schema:
    metadata: MetaData
    outbox: Table
    inbox: Table
    effects: Table


def make_schema() -> Schema:
    """Messaging tables plus `effects`, where test handlers record what they did."""
    metadata = MetaData()
    outbox, inbox = add_messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("note", String(100), nullable=False, unique=True),
    )
    return Schema(metadata, outbox, inbox, effects)


async def stream_messages(
    js: JetStreamContext, stream: str, subject: str | None = None
) -> list[RawStreamMsg]:
    """Every message stored in the stream (optionally on one subject), in order."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    out: list[RawStreamMsg] = []
    first = info.state.first_seq or 1
    for seq in range(first, (info.state.last_seq or 0) + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        if subject is None or msg.subject == subject:
            out.append(msg)
    return out


async def dead_letters(js: JetStreamContext) -> list[envelope_pb2.DeadLetter]:
    letters = []
    for raw in await stream_messages(js, "DEADLETTER"):
        letter = envelope_pb2.DeadLetter()
        letter.ParseFromString(raw.data or b"")
        letters.append(letter)
    return letters


async def count_rows(db: Database, table: Table, *where: Any) -> int:
    async with db.transaction() as session:
        stmt = select(func.count()).select_from(table)
        for clause in where:
            stmt = stmt.where(clause)
        return int((await session.execute(stmt)).scalar_one())


def session_units(db: Database, outbox: Outbox) -> Callable[..., SqlUnitOfWork[SqlConnection]]:
    """Units of work whose `repos` is the session itself: the runtime's tests write their
    `effects` rows directly. They emit as the outbox's producer."""

    def open_unit(*, read_only: bool = False) -> SqlUnitOfWork[SqlConnection]:
        return SqlUnitOfWork(db, outbox, lambda s: s, producer=outbox.producer, read_only=read_only)

    return open_unit
