"""device-monitor: the key each device's partition is computed from (replicas partition the
fleet, docs/device-health.md#replicas): the access node its first sample named, else its own
id; written when the device is first recorded and never changed, so every replica agrees where
a device is evaluated.

Expand only: a nullable column, filled for the devices already recorded (their access node when
known, else their id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("partition_key", sa.String(64), nullable=True))
    op.execute(
        "UPDATE devices SET partition_key = COALESCE(access_node_id, device_id) "
        "WHERE partition_key IS NULL"
    )


def downgrade() -> None:  # pragma: no cover - expand-only; kept for symmetry
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("partition_key")
