"""Outbox and inbox tables, part of every service's database and migrations."""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("envelope", LargeBinary, nullable=False),
        # W3C trace context of the transaction that wrote the event.
        Column("trace_headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


def create_messaging_tables() -> None:
    """For a service's first Alembic migration."""
    op.create_table(
        "outbox",
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("envelope", LargeBinary, nullable=False),
        Column("trace_headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])
    op.create_table(
        "inbox",
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
