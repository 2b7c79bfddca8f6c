"""Outbox and inbox tables, part of every service's database and migrations.

One definition serves both the models (`add_messaging_tables`) and the first migration of each
service (`create_messaging_tables`), so the two cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, LargeBinary, MetaData, String, Table

from orderline_runtime.columns import SEQUENCE, UTCDateTime


def _outbox_columns() -> list[Column[object]]:
    return [
        Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("envelope", LargeBinary, nullable=False),
        # W3C trace context of the transaction that wrote the event.
        Column("trace_headers", JSON, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime, nullable=True),
    ]


def _inbox_columns() -> list[Column[object]]:
    return [
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", UTCDateTime, nullable=False),
    ]


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table("outbox", metadata, *_outbox_columns())
    Index("ix_outbox_sent_at", outbox.c.sent_at)
    inbox = Table("inbox", metadata, *_inbox_columns())
    return outbox, inbox


def create_messaging_tables() -> None:
    """For a service's first Alembic migration."""
    # Imported here: a serving pod (migrations run by the chart's Job) never loads Alembic.
    from alembic import op

    op.create_table("outbox", *_outbox_columns())
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])
    op.create_table("inbox", *_inbox_columns())
