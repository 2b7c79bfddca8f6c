"""provisioning: the order's cancellation on its job, and the compensation recorded (expand
only).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before were never cancelled: empty id and state.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("cancellation_id", sa.String(36), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("cancel_reason", sa.String(32), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("cancel_requested_at", UTCDateTime, nullable=True))
        batch.add_column(
            sa.Column("cancellation_state", sa.String(16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("cancel_decided_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("rolled_back_to", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("compensation", sa.String(32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in (
            "compensation",
            "rolled_back_to",
            "cancel_decided_at",
            "cancellation_state",
            "cancel_requested_at",
            "cancel_reason",
            "cancellation_id",
        ):
            batch.drop_column(column)
