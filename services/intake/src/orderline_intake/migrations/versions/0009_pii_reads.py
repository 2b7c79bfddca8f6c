"""the audit of clear reads of customers' personal data

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:20:00.000000

Expand-only: a new table (docs/security.md#pii-at-rest).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pii_reads",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=100), nullable=False),
        sa.Column("roles", sa.String(length=200), nullable=False),
        sa.Column("rpc", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("pii_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pii_reads_at"), ["at"], unique=False)
        batch_op.create_index("ix_pii_reads_order_seq", ["order_id", "seq"], unique=False)
        batch_op.create_index("ix_pii_reads_principal_seq", ["principal", "seq"], unique=False)


def downgrade() -> None:
    op.drop_table("pii_reads")
