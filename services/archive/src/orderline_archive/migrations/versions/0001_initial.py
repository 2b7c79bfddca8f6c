"""The archive's first schema: chain head, dossiers, documents, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orderline_runtime.messaging.tables import create_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    create_messaging_tables()
    chain_head = op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("dossier_id", sa.String(36), nullable=True),
    )
    op.bulk_insert(
        chain_head, [{"id": 1, "sequence": 0, "content_hash": GENESIS_HASH, "dossier_id": None}]
    )
    op.create_table(
        "dossiers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("order_id", name="uq_dossiers_order_id"),
        sa.UniqueConstraint("sequence", name="uq_dossiers_sequence"),
    )
    op.create_table(
        "documents",
        sa.Column("dossier_id", sa.String(36), sa.ForeignKey("dossiers.id"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("documents")
    op.drop_table("dossiers")
    op.drop_table("chain_head")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_sent_at", "outbox")
    op.drop_table("outbox")
