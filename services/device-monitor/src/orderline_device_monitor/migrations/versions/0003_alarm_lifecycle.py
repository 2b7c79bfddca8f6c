"""device-monitor: alarms in the TMF642 shape (probable cause, repeats, acknowledgement, a
person's clear, device-level root-cause correlation).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows get no probable cause (raised before it was recorded), zero repeats, no
    # acknowledgement and no parent: nothing is invented for them.
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("probable_cause", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("repeat_count", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("acknowledged_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cleared_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("clear_reason", sa.Text, nullable=True))
        batch.add_column(
            sa.Column("is_root_cause", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("parent_alarm_id", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_alarms_parent_alarm_id", "alarms", ["parent_alarm_id"])


def downgrade() -> None:
    op.drop_index("ix_alarms_parent_alarm_id", table_name="alarms")
    with op.batch_alter_table("alarms") as batch:
        for column in (
            "updated_at",
            "suppressed",
            "parent_alarm_id",
            "is_root_cause",
            "clear_reason",
            "cleared_by",
            "acknowledged_at",
            "acknowledged_by",
            "repeat_count",
            "probable_cause",
        ):
            batch.drop_column(column)
