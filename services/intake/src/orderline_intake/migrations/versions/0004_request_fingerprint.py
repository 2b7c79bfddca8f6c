"""the create request's fingerprint, to refuse a request id reused for another order

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Orders recorded before have none: a retry of their request id is answered as before.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "request_fingerprint", sa.String(length=64), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("request_fingerprint")
