"""milestone due times and jeopardy; keyed hashes of the customer's numbers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 06:30:00.000000

Expand-only: new columns with defaults and new indexes. Orders recorded before have no due
times (never in jeopardy) and no hashes until intake's start-up backfill hashes them
(app/customer_hashes.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("milestone_dues", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("jeopardy", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("next_due_check", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("jeopardy_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("jeopardy_milestone", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "customer_phone_hash", sa.String(length=64), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("customer_id_hash", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "customer_hash_key_id", sa.String(length=32), nullable=False, server_default=""
            )
        )
        batch_op.create_index(
            batch_op.f("ix_orders_customer_phone_hash"), ["customer_phone_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_orders_customer_id_hash"), ["customer_id_hash"], unique=False
        )
        batch_op.create_index("ix_orders_next_due_check", ["next_due_check"], unique=False)
        batch_op.create_index("ix_orders_jeopardy", ["jeopardy_due_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_jeopardy")
        batch_op.drop_index("ix_orders_next_due_check")
        batch_op.drop_index(batch_op.f("ix_orders_customer_id_hash"))
        batch_op.drop_index(batch_op.f("ix_orders_customer_phone_hash"))
        for column in (
            "customer_hash_key_id",
            "customer_id_hash",
            "customer_phone_hash",
            "jeopardy_milestone",
            "jeopardy_due_at",
            "next_due_check",
            "jeopardy",
            "milestone_dues",
        ):
            batch_op.drop_column(column)
