"""customers' phone, identity number and addresses sealed field by field

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 07:10:00.000000

Expand-only: new text columns for the sealed values (AES-256-GCM, adapters/pii_crypto.py; a
sealed address is far longer than the 300 characters of the clear column, so new columns
rather than widened ones) and the id of the key each row was sealed with. No data moves here:
intake's start-up task seals the rows written before, in batches, and empties their clear
columns (docs/security.md#pii-at-rest); until then they read from the clear columns.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SEALED = (
    "customer_phone_sealed",
    "customer_id_number_sealed",
    "customer_address_sealed",
    "relocation_old_address_sealed",
    "relocation_new_address_sealed",
)


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for column in SEALED:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("pii_key_id", sa.String(length=32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for column in ("pii_key_id", *reversed(SEALED)):
            batch_op.drop_column(column)
