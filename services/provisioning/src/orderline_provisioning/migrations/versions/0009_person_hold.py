"""provisioning: a person's hold of the order on its job (order.hold_requested /
order.resume_requested): the hold's reason, who and when, and the order's version of the last
hold or resume taken (expand only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("person_hold_reason", sa.String(32), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("person_hold_by", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("person_held_at", UTCDateTime, nullable=True))
        batch.add_column(
            sa.Column("person_hold_version", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("person_hold_version")
        batch.drop_column("person_held_at")
        batch.drop_column("person_hold_by")
        batch.drop_column("person_hold_reason")
