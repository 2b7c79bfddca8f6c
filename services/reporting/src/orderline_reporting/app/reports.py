"""Answering reports from the projections, each from one consistent snapshot."""

from __future__ import annotations

from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.domain.report import OrderReport, order_report
from orderline_runtime.clock import Clock
from orderline_runtime.unit_of_work import UnitOfWorkFactory


class ReportQueries:
    def __init__(self, uow: UnitOfWorkFactory[ProjectionRepository], clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def order_report(self) -> OrderReport:
        # A read-only unit of work reads one snapshot, so the numbers add up.
        async with self.uow(read_only=True) as uow:
            repo = uow.repos
            by_state = await repo.orders_by_state()
            by_type = await repo.orders_by_business_type()
            dossiers = await repo.dossiers_sealed()
            events = await repo.events_projected()
        return order_report(
            state_counts=by_state,
            business_type_counts=by_type,
            dossiers_sealed=dossiers,
            events_projected=events,
            generated_at=self.clock(),
        )
