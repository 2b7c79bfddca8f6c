"""The daily report, on schedule: once a local day has ended (Asia/Shanghai), the whole report
of that day in every language and format, stored once in `daily_reports`.

"Ended" means ended for the projection too: the report of a day is made once a report fact
at or after its last instant has been projected (the consumers have caught up past midnight),
or, on a quiet night, once `GRACE` has passed since midnight and the consumers have nothing left
to read (`caught_up`): a pod that starts after a downtime first reads what waited for it, so a
document, which is never remade, does not miss the day's last events.

The schedule reads the injected clock only: a test steps the clock past midnight and calls
`produce_due()`. A pod that was down at midnight produces the day it missed when it starts (for
the day just ended only, never a backlog). Two replicas may both produce the same day: the
first insert wins and the other's is dropped (ON CONFLICT DO NOTHING), so each day has one
document per language and format.

Archiving: each document stored is also emitted, in the same transaction (the outbox), as
`reporting.daily_report_produced` with its content; the archive keeps it by SHA-256 and seals
it once per (day, language, format) as a record of its log (docs/reporting.md). A replica
whose insert is dropped emits nothing. `ListDailyReports` / `GetDailyReport` serve them too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from orderline.events.v1 import reporting_events_pb2
from orderline_reporting.adapters.repository import DailyReport, ProjectionRepository
from orderline_reporting.app.reports import ReportQueries, export
from orderline_reporting.domain.labels import LOCALES
from orderline_reporting.domain.window import DEFAULT_TIME_ZONE, FORMATS, Window, zone
from orderline_runtime.clock import Clock
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

POLL_SECONDS = 60.0
CATCH_UP_POLL_SECONDS = 1.0
GRACE = timedelta(hours=1)


class DailyReporter:
    def __init__(
        self,
        uow: UnitOfWorkFactory[ProjectionRepository],
        queries: ReportQueries,
        clock: Clock,
        *,
        time_zone: str = DEFAULT_TIME_ZONE,
        poll_seconds: float = POLL_SECONDS,
        caught_up: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.clock = clock
        self.time_zone = time_zone
        self.poll_seconds = poll_seconds
        # Whether the consumers have read everything the streams hold; None: not asked.
        self.caught_up = caught_up
        # A due report waits for the consumers: look again soon, not at the next poll.
        self.waiting = False

    def due_day(self) -> date:
        """The last local day that has ended."""
        return self.clock().astimezone(zone(self.time_zone)).date() - timedelta(days=1)

    async def produce_due(self) -> list[DailyReport]:
        """The documents of the day just ended that are not stored yet, stored; what it stored."""
        day = self.due_day()
        now = self.clock()
        async with self.uow(read_only=True) as uow:
            listed = await uow.repos.daily_reports(day, 50)
            latest = await uow.repos.latest_fact_at()
        end = Window("day", day, day, self.time_zone, LOCALES[0]).end
        if latest is None or latest < end:
            # The projection has seen nothing past midnight: a quiet night, or behind.
            if now < end + GRACE:
                return []
            if self.caught_up is not None and not await self.caught_up():
                self.waiting = True
                return []
        self.waiting = False
        existing = {(r.language, r.format) for r in listed if r.day == day}
        wanted = [(lang, fmt) for lang in LOCALES for fmt in FORMATS if (lang, fmt) not in existing]
        if not wanted:
            return []
        stored: list[DailyReport] = []
        for lang in dict.fromkeys(lang for lang, _ in wanted):
            window = Window("day", day, day, self.time_zone, lang)
            report = await self.queries.report(window)
            for fmt in (f for candidate, f in wanted if candidate == lang):
                document = export(report, "all", fmt)
                stored.append(
                    DailyReport(
                        day=day,
                        language=lang,
                        format=fmt,
                        media_type=document.media_type,
                        sha256=document.sha256,
                        content=document.content,
                        generated_at=report.generated_at,
                    )
                )
        saved: list[DailyReport] = []
        async with self.uow() as uow:
            for made in stored:
                if await uow.repos.save_daily_report(made):
                    saved.append(made)
                    uow.emit(produced_event(made))
        for kept in saved:
            log.info(
                "daily report stored",
                day=kept.day.isoformat(),
                language=kept.language,
                format=kept.format,
                sha256=kept.sha256,
                bytes=len(kept.content),
            )
        return saved

    async def run(self, stop: asyncio.Event) -> None:
        """Checks every `poll_seconds` until stopped."""
        while not stop.is_set():
            await self.produce_due()
            every = CATCH_UP_POLL_SECONDS if self.waiting else self.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def produced_event(report: DailyReport) -> reporting_events_pb2.DailyReportProduced:
    """The event that hands a stored daily report to the archive."""
    event = reporting_events_pb2.DailyReportProduced(
        day=report.day.isoformat(),
        language=report.language,
        format=report.format,
        media_type=report.media_type,
        sha256=report.sha256,
        size_bytes=len(report.content),
        content=report.content,
    )
    event.generated_at.FromDatetime(report.generated_at)
    return event
