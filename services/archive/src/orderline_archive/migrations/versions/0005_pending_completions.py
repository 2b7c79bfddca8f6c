"""When the archive recorded each kept event: a completion waiting for the provisioning events
its milestones name is sealed anyway once it has waited long enough (app/sealing.py).

Expand-only: one nullable column; rows from before it are treated as recorded long ago.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dossier_events") as batch:
        batch.add_column(sa.Column("recorded_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dossier_events") as batch:
        batch.drop_column("recorded_at")
