"""The archive's tables (the migrations in ../migrations create the same)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
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
    UniqueConstraint("order_id", name="uq_dossiers_order_id"),
    UniqueConstraint("sequence", name="uq_dossiers_sequence"),
)

documents = Table(
    "documents",
    metadata,
    Column("dossier_id", String(36), ForeignKey("dossiers.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
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
