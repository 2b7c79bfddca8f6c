"""ReportingService: GetOrderReport."""

from __future__ import annotations

from typing import Any

from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_reporting.app.reports import ReportQueries


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reports: ReportQueries) -> None:
        self.reports = reports

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
