"""device-monitor: device problems reported at follow-ups, waiting for a maintenance ticket.

Expand only: a new table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_requests",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_ticket_requests_pending", "ticket_requests", ["ticket_id", "requested_at"])


def downgrade() -> None:  # pragma: no cover - expand-only; kept for symmetry
    op.drop_index("ix_ticket_requests_pending", table_name="ticket_requests")
    op.drop_table("ticket_requests")
