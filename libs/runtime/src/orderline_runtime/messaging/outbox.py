"""Transactional outbox: an event is a row written in the same transaction as the state change."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Table, bindparam, insert, update

from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.database import SqlConnection
from orderline_runtime.messaging.envelope import build_envelope

if TYPE_CHECKING:
    from orderline_runtime.unit_of_work import PendingEvent


class Outbox:
    def __init__(self, producer: str, table: Table, clock: Clock = system_clock) -> None:
        self.producer = producer
        self.table = table
        # Built once, as every hot statement.
        self._insert = insert(table)
        self._mark = (
            update(table)
            .where(table.c.seq.in_(bindparam("seqs", expanding=True)))
            .values(sent_at=bindparam("sent_at"))
        )
        self.clock = clock
        # Set after a transaction that wrote events commits, so the relay need not wait a poll.
        self.written = asyncio.Event()
        # Rows the relay published and no committed transaction has marked sent yet, in the
        # order published (insertion-ordered dict as an ordered set).
        self.awaiting_mark: dict[int, None] = {}

    async def write(self, session: SqlConnection, events: Sequence[PendingEvent]) -> None:
        """Adds the events of a unit of work to its transaction, in the order emitted."""
        now: datetime = self.clock()
        rows = []
        for e in events:
            env = build_envelope(
                e.spec.event_type,
                e.payload,
                producer=self.producer,
                order_id=e.order_id,
                device_id=e.device_id,
                event_id=e.event_id,
                now=now,
            )
            rows.append(
                {
                    "event_id": e.event_id,
                    "event_type": e.spec.event_type,
                    "subject": e.spec.subject,
                    "envelope": env.SerializeToString(),
                    "trace_headers": e.trace_headers,
                    "created_at": now,
                }
            )
        await session.execute(self._insert, rows)

    def committed(self) -> None:
        self.written.set()

    def published(self, seqs: Sequence[int]) -> None:
        """The relay published these rows: the next write transaction marks them sent."""
        self.awaiting_mark.update(dict.fromkeys(seqs))

    async def mark_published(self, session: SqlConnection) -> list[int]:
        """Marks sent, in the caller's write transaction, the rows published so far; returns
        them, for `marked` once that transaction has committed (a rollback leaves them to the
        next one). Writers of a process take turns, so no two marks run at once."""
        if not self.awaiting_mark:
            return []
        seqs = list(self.awaiting_mark)
        await self.mark_sent(session, seqs)
        return seqs

    async def mark_sent(self, session: SqlConnection, seqs: Sequence[int]) -> None:
        await session.execute(self._mark, {"seqs": list(seqs), "sent_at": self.clock()})

    def marked(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.awaiting_mark.pop(seq, None)
