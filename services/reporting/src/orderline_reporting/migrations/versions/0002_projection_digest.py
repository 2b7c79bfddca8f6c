"""Projection digest: no wall-clock values in projected rows, digest head and checkpoints.

`orders.updated_at` is no longer written and `sealed_dossiers.sealed_seen_at` (when reporting
saw the event) gives way to `sealed_at` (when the archive sealed it: the event's time). Expand
only, as every migration here: both old columns stay, made nullable, so that pods of the
previous release keep writing them during a rollout; existing rows get `sealed_at` from
`sealed_seen_at` (the best time they have). A projection built
before this revision has no recorded positions and its sealed times are arrival times, so its
digest is not comparable with a rebuild until it is rebuilt (docs/reporting.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a column in place.
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    with op.batch_alter_table("sealed_dossiers") as batch:
        batch.add_column(sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column(
            "sealed_seen_at", existing_type=sa.DateTime(timezone=True), nullable=True
        )
    op.execute("UPDATE sealed_dossiers SET sealed_at = sealed_seen_at WHERE sealed_at IS NULL")
    head = op.create_table(
        "projection_head",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("accumulator", sa.String(64), nullable=False),
        sa.Column("position", sa.Text, nullable=False),
        sa.Column("checkpoints", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        head, [{"name": "live", "accumulator": "0" * 64, "position": "{}", "checkpoints": 0}]
    )
    op.create_table(
        "projection_checkpoints",
        sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("position", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("events_applied", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    op.drop_table("projection_head")
    with op.batch_alter_table("sealed_dossiers") as batch:
        batch.drop_column("sealed_at")
