"""provisioning: messages the gateway reported undelivered (the next message's key), and the
customer's confirmation and feedback, once per order (expand only).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("notify_undelivered", sa.Integer, nullable=False, server_default="0")
        )
    op.create_table(
        "activation_confirmations",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("confirmed_by", sa.String(64), nullable=False),
        sa.Column("confirmed_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "customer_feedback",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), nullable=False, unique=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_feedback")
    op.drop_table("activation_confirmations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("notify_undelivered")
