"""Checkpoints say the hour of event time they reached, so that they can be pruned to the last
N and one per hour (app/checkpoints.py, docs/reporting.md).

Expand only: one nullable column. Pods of the previous release leave it NULL in the checkpoints
they record during a rollout; such checkpoints (and those recorded before this revision) count
as one hour of their own when pruning.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.add_column(sa.Column("event_hour", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.drop_column("event_hour")
