"""device-monitor: devices, alarms, anomaly records, device usage, fitness checks, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.messaging.tables import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPEN_ALARM = sa.text("state = 'RAISED'")


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_change_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_alarms_device_id_id", "alarms", ["device_id", "id"])
    op.create_index("ix_alarms_state_id", "alarms", ["state", "id"])
    op.create_index(
        "uq_alarms_open_per_category",
        "alarms",
        ["device_id", "category"],
        unique=True,
        sqlite_where=OPEN_ALARM,
        postgresql_where=OPEN_ALARM,
    )
    op.create_table(
        "anomalies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "alarm_id", sa.String(36), sa.ForeignKey("alarms.id"), nullable=False, unique=True
        ),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("readings", sa.JSON, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_anomalies_device_id", "anomalies", ["device_id"])
    op.create_index("ix_anomalies_order_id", "anomalies", ["order_id"])
    op.create_table(
        "device_usage",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
    )
    op.create_table(
        "fitness_checks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("fit", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("alarm_id", sa.String(36), nullable=True),
        sa.Column("checked_by", sa.String(100), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fitness_checks_device_id", "fitness_checks", ["device_id"])
    op.create_index("ix_fitness_checks_order_id", "fitness_checks", ["order_id"])


def downgrade() -> None:
    for table in ("fitness_checks", "device_usage", "anomalies", "alarms", "devices"):
        op.drop_table(table)
    op.drop_table("inbox")
    op.drop_table("outbox")
