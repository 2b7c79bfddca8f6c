"""The archive's tables (the migrations in ../migrations create the same)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from orderline_runtime.columns import UTCDateTime
from orderline_runtime.messaging.tables import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

# The one row that names the last sealed dossier. Sealing locks it (SELECT ... FOR UPDATE), so
# sequence numbers are assigned one at a time however many archive replicas run.
chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("dossier_id", String(36), nullable=True),
)

CHAIN_HEAD_ID = 1

dossiers = Table(
    "dossiers",
    metadata,
    Column("id", String(36), primary_key=True),
    # One dossier per order; the unique constraint backs up the check made under the lock.
    Column("order_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("sealed_at", UTCDateTime, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    # The order's catalogue key, for ListDossiers' filter ('' for a dossier sealed by a release
    # before 0003 that migration 0003 could not read it for).
    Column("business_type", String(64), nullable=False, server_default=""),
    # What the record is (domain/records.py): dossier, addendum, daily_report or tombstone.
    # `order_id` is the record's unique key (an order id for a dossier), `subject` the order
    # (or day, or purged record) it is about.
    Column("kind", String(16), nullable=False, server_default="dossier"),
    Column("subject", String(64), nullable=False, server_default=""),
    # When the record may be purged (domain/retention.py); NULL: kept for ever.
    Column("retain_until", UTCDateTime, nullable=True),
    # Set by PurgeExpired: the documents' content is gone, their names and hashes remain.
    Column("purged_at", UTCDateTime, nullable=True),
    UniqueConstraint("order_id", name="uq_dossiers_order_id"),
    UniqueConstraint("sequence", name="uq_dossiers_sequence"),
    # ListDossiers pages in sequence order within a business type or a sealed-time range.
    Index("ix_dossiers_business_type_sequence", "business_type", "sequence"),
    Index("ix_dossiers_sealed_at", "sealed_at"),
    Index("ix_dossiers_subject_sequence", "subject", "sequence"),
    Index("ix_dossiers_retain_until", "retain_until"),
)

# The events of an order not sealed yet, from every stream the archive consumes: its dossier
# is assembled from them when the order completes, and they are deleted then.
dossier_events = Table(
    "dossier_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("producer", String(50), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=True),
    Column("trace_id", String(32), nullable=False, server_default=""),
    # The payload as JSON (protobuf's JSON mapping, field names as in the protos).
    Column("payload", Text, nullable=False),
    # When the archive recorded it (its clock); NULL for rows from before migration 0005.
    Column("recorded_at", UTCDateTime, nullable=True),
    Index("ix_dossier_events_order_id", "order_id"),
)

documents = Table(
    "documents",
    metadata,
    Column("dossier_id", String(36), ForeignKey("dossiers.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("media_type", String(100), nullable=False),
    # The content's SHA-256: its name in the blob store (app/ports.py), where the bytes are.
    Column("sha256", String(64), nullable=False),
    # NULL when unknown (a row an older release wrote during an upgrade): then len(content).
    Column("size_bytes", BigInteger, nullable=True),
    # Only documents sealed before migration 0003 keep their bytes here; every later one has
    # NULL and its bytes in the blob store (docs/archive-log.md, "Documents").
    Column("content", LargeBinary, nullable=True),
)

# Four-eyes purges (app/purge.py): an auditor's request naming the records past retention,
# purged only when another auditor approves it.
purge_requests = Table(
    "purge_requests",
    metadata,
    Column("id", String(40), primary_key=True),  # "PR-" and a UUID
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    # The records' ids, as a JSON list, in log order.
    Column("record_ids", Text, nullable=False),
    Column("approved_by", String(200), nullable=True),
    Column("approved_at", UTCDateTime, nullable=True),
)

# The transparency log (domain/merkle.py): the hash of every perfect subtree, the leaves at
# level 0. Written once when complete and never changed; a proof reads O(log n) rows.
log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)
