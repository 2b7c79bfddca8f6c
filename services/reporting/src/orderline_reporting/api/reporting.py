"""ReportingService: the reports (orders, stages, reviews, devices, customers), their export
as CSV or HTML, the daily reports, GetProjectionDigest, RebuildProjections."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_reporting.adapters.repository import DailyReport
from orderline_reporting.app.daily import DailyReporter
from orderline_reporting.app.rebuild import Rebuilder
from orderline_reporting.app.reports import ReportQueries, export, sources
from orderline_reporting.domain import digest as dg
from orderline_reporting.domain import facts as F
from orderline_reporting.domain import labels as L
from orderline_reporting.domain.figures import Rate, Report, StageTime
from orderline_reporting.domain.window import FORMATS, Window, check_export, parse_window
from orderline_runtime.errors import InvalidArgument, NotFound, Violations

pb = reporting_pb2


def _position(position: Mapping[str, dg.StreamPosition]) -> list[reporting_pb2.StreamPosition]:
    return [
        reporting_pb2.StreamPosition(stream=s, sequence=p.sequence, events_applied=p.applied)
        for s, p in sorted(position.items())
    ]


def _ratio(rate: Rate) -> pb.Ratio:
    reply = pb.Ratio(numerator=rate.numerator, denominator=rate.denominator)
    if rate.value is not None:
        reply.value = rate.value
    return reply


def _window(report: Report) -> pb.ReportWindow:
    w = report.window
    reply = pb.ReportWindow(
        period=w.period,
        start_date=w.first_day.isoformat(),
        end_date=w.last_day.isoformat(),
        time_zone=w.time_zone,
        language=w.language,
    )
    reply.start_time.FromDatetime(w.start)
    reply.end_time.FromDatetime(w.end)
    reply.generated_at.FromDatetime(report.generated_at)
    return reply


def _stage(stage: StageTime, lang: str) -> pb.StageLeadTime:
    reply = pb.StageLeadTime(
        stage=stage.stage, label=L.stage_label(stage.stage, lang), orders=stage.samples
    )
    for name in ("p50", "p90", "p99"):
        value = getattr(stage, name)
        if value is not None:
            setattr(reply, f"{name}_seconds", value)
    return reply


def _reasons(reasons: list[tuple[str, int]], lang: str) -> list[pb.ReasonCount]:
    return [pb.ReasonCount(code=c, label=L.reason_label(c, lang), count=n) for c, n in reasons]


def _no_source(*kinds: str) -> list[str]:
    return [k for k in kinds if k not in sources()]


def _daily_info(report: DailyReport) -> pb.DailyReportInfo:
    reply = pb.DailyReportInfo(
        day=report.day.isoformat(),
        language=report.language,
        format=report.format,
        media_type=report.media_type,
        sha256=report.sha256,
        size_bytes=len(report.content),
    )
    reply.generated_at.FromDatetime(report.generated_at)
    return reply


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reports: ReportQueries, rebuilder: Rebuilder, daily: DailyReporter) -> None:
        self.reports = reports
        self.rebuilder = rebuilder
        self.daily = daily

    def _window(self, request: Any, prefix: str = "query.") -> Window:
        q = request.query
        return parse_window(
            now=self.reports.clock(),
            period=q.period,
            start_date=q.start_date,
            end_date=q.end_date,
            time_zone=q.time_zone,
            language=q.language,
            prefix=prefix,
        )

    async def _report(self, request: Any) -> Report:
        return await self.reports.report(self._window(request))

    async def GetStageReport(
        self, request: pb.GetStageReportRequest, context: Any
    ) -> pb.GetStageReportResponse:
        report = await self._report(request)
        lang = report.window.language
        s = report.stages
        return pb.GetStageReportResponse(
            window=_window(report),
            stages=[_stage(t, lang) for t in s.stages],
            end_to_end=_stage(s.end_to_end, lang),
            slowest_stage=s.slowest_stage,
            slowest_stage_label=L.stage_label(s.slowest_stage, lang) if s.slowest_stage else "",
            sla=[
                pb.MilestoneSla(
                    milestone=m.milestone,
                    label=L.milestone_label(m.milestone, lang),
                    met=m.met,
                    late=m.late,
                    overdue=m.overdue,
                )
                for m in s.sla
            ],
            orders_in_jeopardy=s.orders_in_jeopardy,
            sla_breaches=s.sla_breaches,
            provisioning_started=s.provisioning_started,
            activation=_ratio(s.activation),
            fallout=_ratio(s.fallout),
            held=_ratio(s.held),
            adjustment=_ratio(s.adjustment),
            no_source=_no_source(F.ADJUSTMENT),
        )

    async def GetReviewReport(
        self, request: pb.GetReviewReportRequest, context: Any
    ) -> pb.GetReviewReportResponse:
        report = await self._report(request)
        lang = report.window.language
        r = report.reviews
        return pb.GetReviewReportResponse(
            window=_window(report),
            decided=r.decided,
            approved=r.approved,
            auto_approved=r.auto_approved,
            rejected=r.rejected,
            first_pass=_ratio(r.first_pass),
            queued=r.queued,
            information_requested=r.info_requested,
            rejection_reasons=_reasons(r.rejection_reasons, lang),
            information_reasons=_reasons(r.information_reasons, lang),
            queue_reasons=_reasons(r.queue_reasons, lang),
        )

    async def GetDeviceReport(
        self, request: pb.GetDeviceReportRequest, context: Any
    ) -> pb.GetDeviceReportResponse:
        report = await self._report(request)
        lang = report.window.language
        d = report.devices

        def row(r: Any) -> pb.FaultCount:
            reply = pb.FaultCount(
                model=r.model,
                category=r.category,
                category_label=L.category_label(r.category, lang),
                faults=r.faults,
                repaired=r.repaired,
            )
            if r.mean_time_to_repair is not None:
                reply.mean_time_to_repair_seconds = r.mean_time_to_repair
            return reply

        reply = pb.GetDeviceReportResponse(
            window=_window(report),
            faults=d.faults,
            repaired=d.repaired,
            devices_affected=d.devices_affected,
            by_model_and_category=[row(r) for r in d.by_model_and_category],
            by_category=[row(r) for r in d.by_category],
        )
        if d.mean_time_to_repair is not None:
            reply.mean_time_to_repair_seconds = d.mean_time_to_repair
        return reply

    async def GetCustomerReport(
        self, request: pb.GetCustomerReportRequest, context: Any
    ) -> pb.GetCustomerReportResponse:
        report = await self._report(request)
        lang = report.window.language
        c = report.customers
        reply = pb.GetCustomerReportResponse(
            window=_window(report),
            follow_ups=c.follow_ups,
            by_outcome=[
                pb.OutcomeCount(outcome=o, label=L.outcome_label(o, lang), count=n)
                for o, n in c.by_outcome
            ],
            satisfaction=_ratio(c.satisfaction),
            reached=_ratio(c.reached),
            cases_opened=c.cases_opened,
            device_cases=c.device_cases,
            cases_closed=c.cases_closed,
            feedback=c.feedback,
            confirmations=c.confirmations,
            no_source=_no_source(F.FEEDBACK, F.CONFIRMED),
        )
        if c.mean_time_to_close is not None:
            reply.mean_time_to_close_seconds = c.mean_time_to_close
        if c.mean_score is not None:
            reply.mean_score = c.mean_score
        return reply

    async def ExportReport(
        self, request: pb.ExportReportRequest, context: Any
    ) -> pb.ExportReportResponse:
        # Every bad field at once: the window's, the report's and the format's.
        window: Window | None = None
        v = Violations()
        try:
            window = self._window(request)
        except InvalidArgument as bad:
            v.items.extend(bad.violations)
        try:
            check_export(request.report or "all", request.format or "html")
        except InvalidArgument as bad:
            v.items.extend(bad.violations)
        v.raise_if_any()
        assert window is not None
        report = await self.reports.report(window)
        document = export(report, request.report or "all", request.format or "html")
        return pb.ExportReportResponse(
            filename=document.filename,
            media_type=document.media_type,
            content=document.content,
            sha256=document.sha256,
        )

    async def ListDailyReports(
        self, request: pb.ListDailyReportsRequest, context: Any
    ) -> pb.ListDailyReportsResponse:
        size = request.page_size
        if size < 0 or size > 1000:
            v = Violations()
            v.add("page_size", "0 to 1000 | 应为 0 至 1000")
            v.raise_if_any()
        async with self.reports.uow(read_only=True) as uow:
            found = await uow.repos.daily_reports(limit=size or 100)
        return pb.ListDailyReportsResponse(reports=[_daily_info(r) for r in found])

    async def GetDailyReport(
        self, request: pb.GetDailyReportRequest, context: Any
    ) -> pb.GetDailyReportResponse:
        v = Violations()
        day: date | None = None
        try:
            day = date.fromisoformat(request.day)
        except ValueError:
            v.add("day", "a date as YYYY-MM-DD | 日期格式应为 YYYY-MM-DD")
        language = request.language or L.DEFAULT_LOCALE
        if language not in L.LOCALES:
            v.add("language", f"one of {', '.join(L.LOCALES)} | 应为 {'、'.join(L.LOCALES)} 之一")
        fmt = request.format or "html"
        if fmt not in FORMATS:
            v.add("format", f"one of {', '.join(FORMATS)} | 应为 {'、'.join(FORMATS)} 之一")
        v.raise_if_any()
        assert day is not None
        async with self.reports.uow(read_only=True) as uow:
            found = await uow.repos.daily_report(day, language, fmt)
        if found is None:
            raise NotFound("daily_report", f"{day.isoformat()} {language} {fmt}")
        return pb.GetDailyReportResponse(info=_daily_info(found), content=found.content)

    async def GetProjectionDigest(
        self, request: reporting_pb2.GetProjectionDigestRequest, context: Any
    ) -> reporting_pb2.GetProjectionDigestResponse:
        async with self.rebuilder.live(read_only=True) as uow:
            head = await uow.repos.head()
            recomputed = (
                dg.digest(await uow.repos.recomputed_accumulator()) if request.recompute else ""
            )
        return reporting_pb2.GetProjectionDigestResponse(
            digest=head.digest,
            position=_position(head.position),
            checkpoint=head.checkpoints,
            events_applied=head.events_applied,
            recomputed_digest=recomputed,
        )

    async def RebuildProjections(
        self, request: reporting_pb2.RebuildProjectionsRequest, context: Any
    ) -> reporting_pb2.RebuildProjectionsResponse:
        result = await self.rebuilder.rebuild(replace=request.replace)
        live = result.live
        return reporting_pb2.RebuildProjectionsResponse(
            position=_position(result.position),
            digest=result.digest,
            events_replayed=result.events_replayed,
            events_skipped=result.events_skipped,
            checkpoints_compared=result.checkpoints_compared,
            checkpoints_matched=result.checkpoints_matched,
            checkpoints_not_comparable=result.checkpoints_not_comparable,
            mismatches=[
                reporting_pb2.CheckpointMismatch(
                    checkpoint=m.checkpoint,
                    position=_position(m.position),
                    live_digest=m.live_digest,
                    rebuilt_digest=m.rebuilt_digest,
                )
                for m in result.mismatches
            ],
            consistent=result.consistent,
            live_digest=live.digest if live else "",
            live_position=_position(live.position) if live else [],
            replaced=result.replaced,
        )

    async def GetOrderReport(
        self, request: reporting_pb2.GetOrderReportRequest, context: Any
    ) -> reporting_pb2.GetOrderReportResponse:
        window = self._window(request)
        figures = await self.reports.report(window)
        lang = window.language
        report = await self.reports.order_report()
        reply = reporting_pb2.GetOrderReportResponse(
            total_orders=report.total_orders,
            by_state=[reporting_pb2.StateCount(state=s, count=n) for s, n in report.by_state],
            by_business_type=[
                reporting_pb2.BusinessTypeCount(business_type=b, count=n)
                for b, n in report.by_business_type
            ],
            dossiers_sealed=report.dossiers_sealed,
            events_projected=report.events_projected,
            window=_window(figures),
            orders_in_window=figures.orders.total,
            by_period=[
                pb.PeriodCount(
                    period_start=d.isoformat(),
                    business_type=b,
                    business_type_label=L.business_type_label(b, lang),
                    state=s,
                    state_label=L.state_label(s, lang),
                    count=n,
                )
                for d, b, s, n in figures.orders.rows
            ],
        )
        reply.generated_at.FromDatetime(report.generated_at)
        return reply
