"""Report facts and daily reports: the rows the management reports read (domain/facts.py)
and the documents the daily schedule produces (app/daily.py).

Expand only: two new tables. A projection built before this revision has no facts for the
events it applied then, so its reports start at the upgrade and its checkpoints differ from a
rebuild's (which projects facts for every event) until it is rebuilt (docs/reporting.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_facts",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("code", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("business_type", sa.String(64), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("value", sa.Integer, nullable=True),
    )
    op.create_index("ix_order_facts_at", "order_facts", ["at"])
    op.create_index("ix_order_facts_kind_at", "order_facts", ["kind", "at"])
    op.create_table(
        "daily_reports",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("language", sa.String(8), primary_key=True),
        sa.Column("format", sa.String(8), primary_key=True),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_reports")
    op.drop_index("ix_order_facts_kind_at", "order_facts")
    op.drop_index("ix_order_facts_at", "order_facts")
    op.drop_table("order_facts")
