"""device-monitor: site-level root cause. Which access node each device hangs off, and what an
alarm is about (a device, or an access node whose alarm is the root of its devices' line
alarms).

Expand only: nullable columns (NULL alarmed_object_type: a device, as every alarm before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("access_node_id", sa.String(64), nullable=True))
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("alarmed_object_type", sa.String(20), nullable=True))


def downgrade() -> None:  # pragma: no cover - expand-only; kept for symmetry
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("alarmed_object_type")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("access_node_id")
