"""provisioning: device-monitor's word on each device (device.abnormal / device.recovered), and
the fitness check a job resumed after a device hold owes before its next device step (expand
only).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_health",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("abnormal", sa.Boolean, nullable=False),
        sa.Column("alarm_id", sa.String(64), nullable=False),
        sa.Column("alarms", sa.JSON, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("rules_version", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=True),
        sa.Column("event_time", UTCDateTime, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("recheck_fitness", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("recheck_fitness")
    op.drop_table("device_health")
