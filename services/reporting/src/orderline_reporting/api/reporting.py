"""ReportingService: GetOrderReport, GetProjectionDigest, RebuildProjections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_reporting.app.rebuild import Rebuilder
from orderline_reporting.app.reports import ReportQueries
from orderline_reporting.domain import digest as dg


def _position(position: Mapping[str, dg.StreamPosition]) -> list[reporting_pb2.StreamPosition]:
    return [
        reporting_pb2.StreamPosition(stream=s, sequence=p.sequence, events_applied=p.applied)
        for s, p in sorted(position.items())
    ]


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reports: ReportQueries, rebuilder: Rebuilder) -> None:
        self.reports = reports
        self.rebuilder = rebuilder

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
        result = await self.rebuilder.rebuild()
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
        )

    async def GetOrderReport(
        self, request: reporting_pb2.GetOrderReportRequest, context: Any
    ) -> reporting_pb2.GetOrderReportResponse:
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
        )
        reply.generated_at.FromDatetime(report.generated_at)
        return reply
