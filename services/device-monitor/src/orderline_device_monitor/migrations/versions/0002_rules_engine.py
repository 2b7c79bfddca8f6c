"""device-monitor: alarm severity and rules version; the evaluator's transitions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: alarms raised before the rules engine have neither.
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("severity", sa.String(10), nullable=True))
        batch.add_column(sa.Column("rules_version", sa.String(64), nullable=True))
    op.create_table(
        "device_transitions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("category", sa.String(20), nullable=True),
        sa.Column("severity", sa.String(10), nullable=True),
        sa.Column("previous_severity", sa.String(10), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("rules_version", sa.String(64), nullable=False),
        sa.Column("sample_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_device_transitions_device_id_id", "device_transitions", ["device_id", "id"])


def downgrade() -> None:
    op.drop_table("device_transitions")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("rules_version")
        batch.drop_column("severity")
