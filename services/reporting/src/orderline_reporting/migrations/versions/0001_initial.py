"""Reporting's first schema: order projection, event counts, sealed dossiers, outbox, inbox.

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


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("business_type", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("state_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_orders_business_type", "orders", ["business_type"])
    op.create_index("ix_orders_state", "orders", ["state"])
    op.create_table(
        "event_counts",
        sa.Column("event_type", sa.String(100), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "sealed_dossiers",
        sa.Column("dossier_id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("sealed_seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sealed_dossiers")
    op.drop_table("event_counts")
    op.drop_index("ix_orders_state", "orders")
    op.drop_index("ix_orders_business_type", "orders")
    op.drop_table("orders")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_sent_at", "outbox")
    op.drop_table("outbox")
