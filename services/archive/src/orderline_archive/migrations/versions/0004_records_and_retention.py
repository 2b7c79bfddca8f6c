"""Records besides order dossiers, the events a dossier is assembled from, and retention.

- `dossier_events`: every event of an order the archive consumes, kept until the order's
  dossier is sealed from them (then deleted in the sealing transaction).
- `dossiers.kind`: `dossier` (every existing row), `addendum`, `daily_report` or `tombstone`;
  `dossiers.subject`: the order (or day, or purged record) a record is about, set to the order
  id for existing dossiers; `retain_until`: when a record may be purged, computed here for
  existing dossiers from their business type (domain/retention.py's table) and sealed time;
  `purged_at`: set by PurgeExpired.

Expand-only: new table, new columns with defaults, new indexes; the previous release ignores
them (it seals only dossiers, whose new columns take their defaults).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orderline_archive.domain.retention import retain_until
from orderline_runtime.columns import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dossier_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("producer", sa.String(50), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_dossier_events_order_id", "dossier_events", ["order_id"])
    with op.batch_alter_table("dossiers") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="dossier"))
        batch.add_column(sa.Column("subject", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("retain_until", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("purged_at", UTCDateTime, nullable=True))
    op.create_index("ix_dossiers_subject_sequence", "dossiers", ["subject", "sequence"])
    op.create_index("ix_dossiers_retain_until", "dossiers", ["retain_until"])
    op.execute("UPDATE dossiers SET subject = order_id WHERE kind = 'dossier'")
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            sa.column("id"), sa.column("business_type"), sa.column("sealed_at", UTCDateTime)
        ).select_from(sa.table("dossiers"))
    ).all()
    if rows:
        table = sa.table("dossiers", sa.column("id"), sa.column("retain_until", UTCDateTime))
        for row in rows:
            bind.execute(
                table.update()
                .where(table.c.id == row.id)
                .values(retain_until=retain_until("dossier", row.business_type, row.sealed_at))
            )


def downgrade() -> None:
    op.drop_index("ix_dossiers_retain_until", "dossiers")
    op.drop_index("ix_dossiers_subject_sequence", "dossiers")
    with op.batch_alter_table("dossiers") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("retain_until")
        batch.drop_column("subject")
        batch.drop_column("kind")
    op.drop_index("ix_dossier_events_order_id", "dossier_events")
    op.drop_table("dossier_events")
