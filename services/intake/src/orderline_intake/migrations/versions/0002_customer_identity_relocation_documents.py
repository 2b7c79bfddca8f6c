"""customer identity, contact channel, relocation addresses and documents

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 21:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Orders recorded before this revision had resident identity numbers, no relocation and no
    # documents: the server defaults say exactly that for the existing rows.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column(
            "customer_id_number",
            existing_type=sa.String(length=18),
            type_=sa.String(length=20),
            existing_nullable=False,
        )
        batch_op.add_column(
            sa.Column(
                "customer_id_type",
                sa.String(length=16),
                nullable=False,
                server_default="resident_id",
            )
        )
        batch_op.add_column(
            sa.Column(
                "customer_passport_country", sa.String(length=3), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "customer_preferred_channel",
                sa.String(length=8),
                nullable=False,
                server_default="sms",
            )
        )
        batch_op.add_column(
            sa.Column(
                "relocation_old_address", sa.String(length=300), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "relocation_new_address", sa.String(length=300), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("documents", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("documents")
        batch_op.drop_column("relocation_new_address")
        batch_op.drop_column("relocation_old_address")
        batch_op.drop_column("customer_preferred_channel")
        batch_op.drop_column("customer_passport_country")
        batch_op.drop_column("customer_id_type")
        batch_op.alter_column(
            "customer_id_number",
            existing_type=sa.String(length=20),
            type_=sa.String(length=18),
            existing_nullable=False,
        )
