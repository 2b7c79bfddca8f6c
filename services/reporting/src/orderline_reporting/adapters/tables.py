"""Projection tables (the migrations in ../migrations create the same). All of them can be
rebuilt by replaying the streams into an empty database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

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

# The digest at each committed position: one row per transaction that applied events. A
# rebuild replays the streams and compares its digest at these positions.
projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("events_applied", BigInteger, nullable=False),
)
