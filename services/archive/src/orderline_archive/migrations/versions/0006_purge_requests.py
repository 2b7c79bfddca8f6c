"""Four-eyes purges: a purge request by one auditor, approved by another (app/purge.py).

Expand-only: a new table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purge_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("record_ids", sa.Text, nullable=False),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("approved_at", UTCDateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("purge_requests")
