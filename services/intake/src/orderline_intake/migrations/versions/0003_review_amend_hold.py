"""review queue, requested fields, device model; longer reason codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing orders were never queued and wait for nothing: empty lists and no queue time.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("device_model", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("review_reasons", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("requested_fields", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(sa.Column("review_queued_at", UTCDateTime(), nullable=True))
        # A reviewer may give several reason codes (joined by "+").
        batch_op.alter_column(
            "state_reason",
            existing_type=sa.String(length=64),
            type_=sa.String(length=200),
            existing_nullable=False,
        )
        batch_op.create_index(
            "ix_orders_review_queue", ["state", "review_queued_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_orders_customer_id_number"), ["customer_id_number"], unique=False
        )
    with op.batch_alter_table("order_history", schema=None) as batch_op:
        batch_op.alter_column(
            "reason_code",
            existing_type=sa.String(length=64),
            type_=sa.String(length=200),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("order_history", schema=None) as batch_op:
        batch_op.alter_column(
            "reason_code",
            existing_type=sa.String(length=200),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_customer_id_number"))
        batch_op.drop_index("ix_orders_review_queue")
        batch_op.alter_column(
            "state_reason",
            existing_type=sa.String(length=200),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
        batch_op.drop_column("review_queued_at")
        batch_op.drop_column("requested_fields")
        batch_op.drop_column("review_reasons")
        batch_op.drop_column("device_model")
