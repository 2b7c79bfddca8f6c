"""Answering reports from the projections, each from one consistent snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.domain.report import OrderReport, order_report
from orderline_runtime.database import Database


class ReportQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def order_report(self) -> OrderReport:
        async with self.db.sessions() as session:
            if self.db.is_postgres:
                # Every count from the same snapshot, so the numbers add up.
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            repo = ProjectionRepository(session)
            by_state = await repo.orders_by_state()
            by_type = await repo.orders_by_business_type()
            dossiers = await repo.dossiers_sealed()
            events = await repo.events_projected()
        return order_report(
            state_counts=by_state,
            business_type_counts=by_type,
            dossiers_sealed=dossiers,
            events_projected=events,
            generated_at=datetime.now(UTC),
        )
