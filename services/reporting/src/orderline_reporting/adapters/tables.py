"""Projection tables (the migrations in ../migrations create the same). All of them can be
rebuilt by replaying the streams into an empty database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from orderline_runtime.columns import UTCDateTime
from orderline_runtime.messaging.tables import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

# One row per order: its business type and the state that prevails (domain/projection.py).
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("business_type", String(64), nullable=False, index=True),
    Column("state", String(32), nullable=True, index=True),
    # Producer time of the observation that set `state`.
    Column("state_at", UTCDateTime, nullable=True),
    # Written by releases before migration 0002 only (a wall-clock time, not projected now);
    # kept so that their pods keep working during a rollout.
    Column("updated_at", UTCDateTime, nullable=True),
)

# Events projected, by type.
event_counts = Table(
    "event_counts",
    metadata,
    Column("event_type", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Dossiers the archive sealed, one row each.
sealed_dossiers = Table(
    "sealed_dossiers",
    metadata,
    Column("dossier_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    # Producer time of the archive.dossier_sealed event (never the wall clock: a rebuild
    # must write the same row). Null only in a row a pod of the previous release wrote during
    # a rollout (readers fall back to `sealed_seen_at`).
    Column("sealed_at", UTCDateTime, nullable=True),
    # When a release before migration 0002 saw the event; kept for its pods, not written now.
    Column("sealed_seen_at", UTCDateTime, nullable=True),
)

# The projection's digest state (domain/digest.py), one row ("live"): the sum of its row
# hashes and the stream position it has reached. Updated once per transaction, at commit.
projection_head = Table(
    "projection_head",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("accumulator", String(64), nullable=False),
    Column("position", Text, nullable=False),
    Column("checkpoints", BigInteger, nullable=False),
)

# The digest at each committed position: one row per transaction that applied events, pruned
# to the last N and one per hour of event time (app/checkpoints.py). A rebuild replays the
# streams and compares its digest at these positions.
projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("events_applied", BigInteger, nullable=False),
    # The latest producer time of the events the transaction applied, in whole hours since the
    # Unix epoch (UTC): pruning keeps the last checkpoint of each such hour (app/checkpoints.py).
    # NULL in checkpoints recorded before migration 0004.
    Column("event_hour", BigInteger, nullable=True),
)

# Report facts (domain/facts.py): one row per event a management report reads, keyed by the
# event id, inserted once and never changed. Times are the producers'.
order_facts = Table(
    "order_facts",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("code", String(200), nullable=False),
    Column("detail", String(200), nullable=False),
    Column("business_type", String(64), nullable=False),
    Column("model", String(100), nullable=False),
    Column("value", Integer, nullable=True),
    Index("ix_order_facts_at", "at"),
    Index("ix_order_facts_kind_at", "kind", "at"),
)

# The daily report, produced on schedule (app/daily.py): one document per local day, language
# and format. Not a projection (it records when it was generated) and not in the digest.
daily_reports = Table(
    "daily_reports",
    metadata,
    Column("day", Date, primary_key=True),
    Column("language", String(8), primary_key=True),
    Column("format", String(8), primary_key=True),
    Column("media_type", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("generated_at", UTCDateTime, nullable=False),
)
