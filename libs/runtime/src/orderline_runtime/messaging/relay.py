"""The outbox relay: publishes committed outbox rows to JetStream, then marks them sent.

Each event is published with `Nats-Msg-Id` = event id, so a crash between publish and mark
produces a duplicate JetStream drops (and, past its duplicate window, the consumers' inboxes).
On PostgreSQL several relays share the outbox with FOR UPDATE SKIP LOCKED and mark in the
transaction that claimed the rows. On SQLite there is one relay per database; it publishes
outside the write lock, and while running it leaves the mark to the service's next write
transaction (`Outbox.mark_published`, called by the unit of work), so that marking costs no
write transaction of its own under load; when nothing else writes, it marks on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import Select, Table, select

from orderline_runtime import metrics
from orderline_runtime.database import Database
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.telemetry import continued, inject_current, tracer
from orderline_runtime.telemetry_names import EVENT_TYPE, publish_span

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        bus: EventBus,
        *,
        batch_size: int = 200,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.table: Table = outbox.table
        self.bus = bus
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        # Hot statements are built once: building one costs more than running it.
        self._pending_stmt: Select[Any] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.ready.wait()
        failures = 0
        while not stop.is_set():
            # Cleared before reading, so a commit during the pass makes the next wait return.
            self.outbox.written.clear()
            try:
                published = await self._relay(defer_marks=not self.db.is_postgres)
                if published == 0:
                    # Idle: nothing else may write soon to carry the marks.
                    await self.flush_marks()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning("outbox relay failed, retrying", error=str(exc), delay=delay)
                await _wait(stop, delay)
                continue
            if published < self.batch_size:
                await _wait_any(stop, self.outbox.written, self.idle_poll_seconds)
        # Last pass so events of work finished during shutdown leave now rather than at restart.
        try:
            await self.relay_once()
        except Exception as exc:
            log.warning(
                "final outbox relay pass failed; rows stay for the next start", error=str(exc)
            )

    async def relay_once(self) -> int:
        """Publishes what is pending and marks it sent; returns how many were published."""
        published = await self._relay(defer_marks=False)
        await self.flush_marks()
        return published

    async def flush_marks(self) -> None:
        """Marks sent, in a write transaction of its own, what was published and not yet marked
        by another transaction."""
        if not self.outbox.awaiting_mark:
            return
        async with self.db.transaction() as session:
            marking = await self.outbox.mark_published(session)
        self.outbox.marked(marking)

    async def _relay(self, *, defer_marks: bool) -> int:
        if self.db.is_postgres:
            # Rows stay locked while they are published; other relays skip them.
            async with self.db.transaction() as session:
                rows = (
                    await session.execute(self._pending().with_for_update(skip_locked=True))
                ).all()
                if not rows:
                    return 0
                await self._publish_all(rows)
                await self.outbox.mark_sent(session, [r.seq for r in rows])
        else:
            # SQLite has one relay per database. Holding its single write lock while publishing
            # would stall every other write of the service for as long as NATS takes to answer
            # (or to time out during an outage): read, publish, then mark in a short write.
            async with self.db.reading() as session:
                awaiting = self.outbox.awaiting_mark
                rows = [
                    r
                    for r in (await session.execute(self._pending())).all()
                    if r.seq not in awaiting
                ]
            if not rows:
                return 0
            await self._publish_all(rows)
            self.outbox.published([r.seq for r in rows])
            if not defer_marks:
                await self.flush_marks()
        attributes = {"producer": self.outbox.producer}
        metrics.outbox_published.add(len(rows), attributes)
        now = self.outbox.clock()
        for row in rows:
            metrics.outbox_lag.record((now - row.created_at).total_seconds(), attributes)
        return len(rows)

    def _pending(self) -> Select[Any]:
        if self._pending_stmt is None:
            self._pending_stmt = self._build_pending()
        return self._pending_stmt

    def _build_pending(self) -> Select[Any]:
        t = self.table
        return (
            select(
                t.c.seq,
                t.c.event_id,
                t.c.event_type,
                t.c.subject,
                t.c.envelope,
                t.c.trace_headers,
                t.c.created_at,
            )
            .where(t.c.sent_at.is_(None))
            .order_by(t.c.seq)
            .limit(self.batch_size)
        )

    async def _publish_all(self, rows: Sequence[Any]) -> None:
        await asyncio.gather(*(self._publish(r) for r in rows))

    async def _publish(self, row: Any) -> None:
        event_id: str = row.event_id
        event_type: str = row.event_type
        subject: str = row.subject
        with (
            continued(row.trace_headers),
            tracer().start_as_current_span(
                publish_span(event_type),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": subject,
                    "messaging.message.id": event_id,
                    EVENT_TYPE: event_type,
                },
            ) as span,
        ):
            headers = inject_current()
            headers["Nats-Msg-Id"] = event_id
            await self.bus.publish(subject, row.envelope, headers)
            span.set_status(trace.StatusCode.OK)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
