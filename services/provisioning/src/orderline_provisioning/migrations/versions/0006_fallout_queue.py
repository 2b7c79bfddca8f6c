"""provisioning: the fallout queue on the job (expand only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderline_runtime.columns import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs from before were never retried and skipped nothing; their rounds count from their
    # recorded test runs' last round (0 when none).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("fallout_at", UTCDateTime, nullable=True))
        batch.add_column(
            sa.Column("fallout_retries", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("skipped_tests", sa.JSON, nullable=True))
        batch.add_column(sa.Column("rounds_done", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE jobs SET rounds_done = (SELECT COALESCE(MAX(test_runs.round), 0) FROM test_runs "
        "WHERE test_runs.job_id = jobs.id)"
    )
    # Held jobs waiting for a person (every hold but an abnormal device's) enter the queue.
    op.execute(
        "UPDATE jobs SET fallout_at = updated_at WHERE state = 'held' "
        "AND reason <> 'DEVICE_ABNORMAL'"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in ("rounds_done", "skipped_tests", "fallout_retries", "fallout_at"):
            batch.drop_column(column)
