"""device-monitor: maintenance tickets (TMF621) and anomaly records for root-cause analysis
(model, samples around onset, actions tried, the ticket, root cause and corrective action).

Expand only: a new table and nullable columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("state <> 'closed'")


def upgrade() -> None:
    # Anomalies recorded before this have none of it: nothing is invented for them.
    with op.batch_alter_table("anomalies") as batch:
        batch.add_column(sa.Column("device_model", sa.String(64), nullable=True))
        batch.add_column(sa.Column("detail", sa.Text, nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("samples", sa.JSON, nullable=True))
        batch.add_column(sa.Column("onset_index", sa.Integer, nullable=True))
        batch.add_column(sa.Column("actions", sa.JSON, nullable=True))
        batch.add_column(sa.Column("ticket_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("root_cause_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("corrective_action_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.Text, nullable=True))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_anomalies_category_first_seen_at", "anomalies", ["category", "first_seen_at"]
    )
    op.create_index(
        "ix_anomalies_device_model_first_seen_at", "anomalies", ["device_model", "first_seen_at"]
    )
    op.create_index("ix_anomalies_ticket_id", "anomalies", ["ticket_id"])
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason_code", sa.String(20), nullable=False),
        sa.Column("category", sa.String(20), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("alarm_id", sa.String(36), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("root_cause_code", sa.String(40), nullable=True),
        sa.Column("corrective_action_code", sa.String(40), nullable=True),
        sa.Column("resolution_note", sa.Text, nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(30), nullable=True),
        sa.Column("history", sa.JSON, nullable=False),
    )
    op.create_index("ix_tickets_device_id_id", "tickets", ["device_id", "id"])
    op.create_index("ix_tickets_state_id", "tickets", ["state", "id"])
    op.create_index(
        "uq_tickets_open_per_device",
        "tickets",
        ["device_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_table("tickets")
    op.drop_index("ix_anomalies_ticket_id", table_name="anomalies")
    op.drop_index("ix_anomalies_device_model_first_seen_at", table_name="anomalies")
    op.drop_index("ix_anomalies_category_first_seen_at", table_name="anomalies")
    with op.batch_alter_table("anomalies") as batch:
        for column in (
            "closed_at",
            "resolution_note",
            "corrective_action_code",
            "root_cause_code",
            "ticket_id",
            "actions",
            "onset_index",
            "samples",
            "last_seen_at",
            "detail",
            "device_model",
        ):
            batch.drop_column(column)
