"""provisioning: every voucher keeps its signed attestation (DSSE envelope) and key id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: vouchers issued before signing have neither (they verify as UNSIGNED_VOUCHER).
    with op.batch_alter_table("vouchers") as batch:
        batch.add_column(sa.Column("envelope", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vouchers") as batch:
        batch.drop_column("key_id")
        batch.drop_column("envelope")
