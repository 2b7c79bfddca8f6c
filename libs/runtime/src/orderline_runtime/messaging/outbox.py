"""Transactional outbox: an event is a row written in the same transaction as the state change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession

from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.messaging.streams import stream_for, subject_for
from orderline_runtime.telemetry import inject_current


class Outbox:
    def __init__(self, producer: str, table: Table) -> None:
        self.producer = producer
        self.table = table
        # Set after a transaction that wrote events commits, so the relay need not wait a poll.
        self.written = asyncio.Event()

    async def add(
        self,
        session: AsyncSession,
        event_type: str,
        payload: Message,
        *,
        order_id: str = "",
        device_id: str = "",
    ) -> str:
        """Adds the event to the session's transaction; returns its id.

        An event type no stream owns is refused here: such a row could never be published."""
        stream_for(event_type)
        env = build_envelope(
            event_type, payload, producer=self.producer, order_id=order_id, device_id=device_id
        )
        await session.execute(
            insert(self.table).values(
                event_id=env.id,
                event_type=event_type,
                subject=subject_for(event_type),
                envelope=env.SerializeToString(),
                trace_headers=inject_current(),
                created_at=datetime.now(UTC),
            )
        )
        if not session.info.get("outbox_listener"):
            session.info["outbox_listener"] = True
            event.listen(session.sync_session, "after_commit", self._after_commit, once=True)
        return env.id

    def _after_commit(self, sync_session: Any) -> None:
        sync_session.info.pop("outbox_listener", None)
        self.written.set()
