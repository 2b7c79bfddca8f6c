"""provisioning: versioned device configuration records, every test round with its
measurements, measurements on test results, and the activation on the job (expand only).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs and results from before keep NULL / empty: their rollback falls back to the version
    # below their configuration, and they show no measurements.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("base_config_version", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("network_action", sa.String(16), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("activation_id", sa.String(100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("activated_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("test_results") as batch:
        batch.add_column(sa.Column("measurements", sa.JSON, nullable=True))
        batch.add_column(sa.Column("findings", sa.JSON, nullable=True))
        batch.add_column(sa.Column("round", sa.Integer, nullable=True))
        batch.add_column(sa.Column("invalid", sa.Boolean, nullable=True))
    op.create_table(
        "test_runs",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("invalid", sa.Boolean, nullable=False),
        sa.Column("device_passed", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("measurements", sa.JSON, nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("adjustment", sa.JSON, nullable=False),
    )
    op.create_table(
        "device_configs",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("config_version", sa.BigInteger, nullable=False),
        sa.Column("previous_version", sa.BigInteger, nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_device_configs_job_id", "device_configs", ["job_id"])
    op.create_index(
        "ix_device_configs_device_recorded", "device_configs", ["device_id", "recorded_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_device_configs_device_recorded", "device_configs")
    op.drop_index("ix_device_configs_job_id", "device_configs")
    op.drop_table("device_configs")
    op.drop_table("test_runs")
    with op.batch_alter_table("test_results") as batch:
        for column in ("invalid", "round", "findings", "measurements"):
            batch.drop_column(column)
    with op.batch_alter_table("jobs") as batch:
        for column in ("activated_at", "activation_id", "network_action", "base_config_version"):
            batch.drop_column(column)
