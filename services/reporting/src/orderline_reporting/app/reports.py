"""Answering reports from the projections, each from one consistent snapshot."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from orderline_catalogue import load_catalogue
from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.domain import facts, render
from orderline_reporting.domain.figures import Report, full_report
from orderline_reporting.domain.report import OrderReport, order_report
from orderline_reporting.domain.window import Window, check_export
from orderline_runtime.clock import Clock
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.unit_of_work import UnitOfWorkFactory

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


@cache
def sources() -> frozenset[str]:
    """The kinds of report fact some event in the catalogue feeds today."""
    kinds = (facts.kind_of(spec.event_type) for spec in catalogue().consumed_by("reporting"))
    return frozenset(k for k in kinds if k)


@cache
def service_levels() -> Mapping[str, Mapping[str, timedelta]]:
    """Each business type's SLA per milestone, from the business catalogue."""
    return {key: dict(business.sla) for key, business in load_catalogue().types.items()}


@dataclass(frozen=True)
class Export:
    filename: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def export(report: Report, which: str, fmt: str) -> Export:
    """One report (or `all`) as CSV or as the self-contained HTML page."""
    check_export(which, fmt)
    parts = render.sections(report, which, sources())
    text = (
        render.to_csv(parts, report.window.language)
        if fmt == "csv"
        else render.to_html(report, parts)
    )
    w = report.window
    name = f"orderline-{which}-{w.first_day.isoformat()}"
    if w.last_day != w.first_day:
        name += f"-{w.last_day.isoformat()}"
    return Export(f"{name}.{w.language}.{fmt}", MEDIA_TYPES[fmt], text.encode())


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

    async def report(self, window: Window) -> Report:
        """Every figure of the window, from one snapshot: the orders created in it and every
        report fact since its start (a stage, a repair or a case closing may end later)."""
        async with self.uow(read_only=True) as uow:
            cohort = await uow.repos.cohort(window.start, window.end)
            found = await uow.repos.facts_since(window.start)
        return full_report(window, cohort, found, service_levels(), self.clock())
