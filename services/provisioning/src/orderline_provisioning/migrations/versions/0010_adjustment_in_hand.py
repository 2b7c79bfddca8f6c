"""provisioning: the adjustment loop's position on the job between its commits (the adjustment
decided, then applied), so a process killed mid-loop resumes it without losing the record of
a change the device made (expand only).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for every job: none is inside a loop that committed part of itself before.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("adjustment", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("adjustment")
