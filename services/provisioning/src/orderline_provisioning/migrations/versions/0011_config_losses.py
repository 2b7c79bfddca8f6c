"""provisioning: how often the device lost the job's configuration before its activation (a
factory reset, a replaced unit), so the job configures it again once and then holds it for a
person (domain/config_loss.py) (expand only).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0 for every job: none was found without its configuration before.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("config_losses", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("config_losses")
