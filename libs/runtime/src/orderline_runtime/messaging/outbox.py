"""Transactional outbox: an event is a row written in the same transaction as the state change."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Table, insert

from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.database import SqlConnection
from orderline_runtime.messaging.envelope import build_envelope

if TYPE_CHECKING:
    from orderline_runtime.unit_of_work import PendingEvent


class Outbox:
    def __init__(self, producer: str, table: Table, clock: Clock = system_clock) -> None:
        self.producer = producer
        self.table = table
        self._insert = insert(table)  # built once, as every hot statement
        self.clock = clock
        # Set after a transaction that wrote events commits, so the relay need not wait a poll.
        self.written = asyncio.Event()

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
