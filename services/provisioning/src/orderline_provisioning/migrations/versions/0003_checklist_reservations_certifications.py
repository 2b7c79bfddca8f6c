"""provisioning: the pre-operation checklist and operator on each job, device reservations
and operator certifications.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before keep an empty operator until the worker next takes them up (it
    # assigns one then) and no checklist until their prechecks run.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("operator", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("checklist", sa.JSON, nullable=True))
        batch.create_index("ix_jobs_device_id", ["device_id"])
    op.create_table(
        "device_reservations",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), nullable=False, unique=True),
        sa.Column("reserved_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "certifications",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("business_type", sa.String(64), primary_key=True),
        sa.Column("granted_at", UTCDateTime, nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("certifications")
    op.drop_table("device_reservations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_device_id")
        batch.drop_column("checklist")
        batch.drop_column("operator")
