"""The management reports end to end: the known set of orders (tests/unit/report_fixture.py)
published over real NATS as their producers would, projected by the running service into a
real database (SQLite and PostgreSQL), and read over real gRPC; the export, bad input, and the
daily report produced when the injected clock passes midnight in Shanghai."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2

from orderline.events.v1 import envelope_pb2, reporting_events_pb2
from orderline.reporting.v1 import reporting_pb2 as pb
from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_reporting.app.daily import DailyReporter
from orderline_reporting.app.reports import ReportQueries
from orderline_reporting.bootstrap import build
from orderline_reporting.settings import ReportingSettings
from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.service import Service

from ..unit.report_fixture import events

MANAGER = (("authorization", "Bearer dev-manager"),)
DAY = pb.ReportQuery(start_date="2026-05-09", end_date="2026-05-09")


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    service: Service  # type: ignore[type-arg]
    stub: reporting_pb2_grpc.ReportingServiceStub
    clock: Clock


@pytest_asyncio.fixture
async def running(db_url: str, nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Running]:
    # Before the known orders' day: the schedule's first run stores 7 May's (empty) report.
    clock = Clock(datetime(2026, 5, 8, 4, 0, tzinfo=UTC))
    service = build(
        ReportingSettings(
            service_name="reporting",
            grpc_port=free_port(),
            database_url=db_url,
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            shutdown_grace_seconds=2,
        ),
        clock,
    )
    async with serving(service) as address, grpc.aio.insecure_channel(address) as channel:
        yield Running(service, reporting_pb2_grpc.ReportingServiceStub(channel), clock)


async def publish_known_orders(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    producers = {"order": "intake", "device": "device-monitor"}
    published = events()
    for e in published:
        env = build_envelope(
            e.event_type,
            e.payload,
            producer=producers.get(e.event_type.split(".")[0], e.event_type.split(".")[0]),
            order_id=e.order_id,
            device_id=e.device_id,
            now=e.at,
        )
        await js.publish(
            f"orderline.{env.type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )
    await nc.drain()
    return len(published)


async def projected(r: Running, nats_server: NatsServer) -> None:
    count = await publish_known_orders(nats_server.url)

    async def applied() -> int:
        reply = await r.stub.GetProjectionDigest(pb.GetProjectionDigestRequest(), metadata=MANAGER)
        return int(reply.events_applied)

    await eventually(applied, lambda n: n >= count, 60)


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = status_pb2.Status.FromString(
        dict(err.trailing_metadata() or ())["grpc-status-details-bin"]  # type: ignore[arg-type]
    )
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


async def test_every_report_gives_the_known_figures(
    running: Running, nats_server: NatsServer
) -> None:
    r = running
    await projected(r, nats_server)
    r.clock.now = datetime(2026, 5, 12, 4, 0, tzinfo=UTC)

    orders = await r.stub.GetOrderReport(pb.GetOrderReportRequest(query=DAY), metadata=MANAGER)
    assert orders.orders_in_window == 5
    assert orders.total_orders == 6  # all time: F too
    assert [(p.period_start, p.business_type, p.state, p.count) for p in orders.by_period] == [
        ("2026-05-09", "broadband_install", "acknowledged", 1),
        ("2026-05-09", "broadband_install", "inProgress", 1),
        ("2026-05-09", "broadband_install", "completed", 1),
        ("2026-05-09", "broadband_install", "rejected", 1),
        ("2026-05-09", "iptv", "held", 1),
    ]
    assert orders.window.time_zone == "Asia/Shanghai"
    assert orders.window.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 5, 8, 16, tzinfo=UTC)

    stages = await r.stub.GetStageReport(pb.GetStageReportRequest(query=DAY), metadata=MANAGER)
    review = stages.stages[0]
    assert (review.stage, review.orders, review.p50_seconds, review.p90_seconds) == (
        "review_approved",
        3,
        0.0,
        18000.0,
    )
    assert stages.stages[2].HasField("p99_seconds")  # device_configured: measured (A)
    assert stages.end_to_end.p50_seconds == 12720.0
    assert (stages.slowest_stage, stages.orders_in_jeopardy, stages.sla_breaches) == (
        "review_approved",
        3,
        4,
    )
    assert (stages.activation.numerator, stages.activation.denominator) == (1, 3)
    assert (stages.fallout.numerator, stages.held.numerator) == (1, 1)
    assert list(stages.no_source) == []

    reviews = await r.stub.GetReviewReport(pb.GetReviewReportRequest(query=DAY), metadata=MANAGER)
    assert (reviews.first_pass.numerator, reviews.first_pass.denominator) == (2, 4)
    assert reviews.first_pass.value == 0.5
    assert [(c.code, c.count) for c in reviews.rejection_reasons] == [
        ("DOCUMENT_INVALID", 1),
        ("IDENTITY_NOT_VERIFIED", 1),
    ]

    zh = pb.ReportQuery(start_date="2026-05-09", end_date="2026-05-09", language="zh-CN")
    devices = await r.stub.GetDeviceReport(pb.GetDeviceReportRequest(query=zh), metadata=MANAGER)
    assert (devices.faults, devices.repaired, devices.mean_time_to_repair_seconds) == (3, 2, 4500)
    assert [(c.category_label, c.faults) for c in devices.by_category] == [("温度", 2), ("线路", 1)]
    assert list(devices.no_source) == []

    customers = await r.stub.GetCustomerReport(
        pb.GetCustomerReportRequest(query=DAY), metadata=MANAGER
    )
    assert customers.follow_ups == 4
    assert (customers.satisfaction.numerator, customers.satisfaction.denominator) == (2, 3)
    assert customers.mean_time_to_close_seconds == 14400
    # Provisioning publishes feedback and confirmations (none in this window): no score, and
    # nothing said to lack a source.
    assert not customers.HasField("mean_score") and customers.feedback == 0
    assert list(customers.no_source) == []

    html = await r.stub.ExportReport(
        pb.ExportReportRequest(report="all", format="html", query=zh), metadata=MANAGER
    )
    assert html.media_type.startswith("text/html")
    assert html.filename == "orderline-all-2026-05-09.zh-CN.html"
    page = html.content.decode()
    assert "宽带新装" in page and page.count('class="bar"') > 10
    csv = await r.stub.ExportReport(
        pb.ExportReportRequest(report="reviews", format="csv", query=DAY), metadata=MANAGER
    )
    assert "First-pass review rate,50.0% (2/4)" in csv.content.decode()

    # The digest covers the report facts: recomputing it from every row gives the kept one.
    digest = await r.stub.GetProjectionDigest(
        pb.GetProjectionDigestRequest(recompute=True), metadata=MANAGER
    )
    assert digest.recomputed_digest == digest.digest


async def test_unknown_periods_formats_and_reports_are_invalid_arguments(
    running: Running,
) -> None:
    r = running
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await r.stub.GetStageReport(
            pb.GetStageReportRequest(query=pb.ReportQuery(period="fortnight", language="fr")),
            metadata=MANAGER,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == ["query.period", "query.language"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await r.stub.ExportReport(
            pb.ExportReportRequest(
                report="weather", format="pdf", query=pb.ReportQuery(end_date="9 May")
            ),
            metadata=MANAGER,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == ["query.end_date", "report", "format"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await r.stub.GetDailyReport(
            pb.GetDailyReportRequest(day="yesterday", format="pdf"), metadata=MANAGER
        )
    assert violations(caught.value) == ["day", "format"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await r.stub.GetDailyReport(pb.GetDailyReportRequest(day="1999-01-01"), metadata=MANAGER)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # A clerk reads no management report.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await r.stub.GetReviewReport(
            pb.GetReviewReportRequest(), metadata=(("authorization", "Bearer dev-clerk"),)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_daily_report_is_produced_once_a_day_has_ended_in_shanghai(
    running: Running, nats_server: NatsServer
) -> None:
    r = running

    # At start the schedule stored the day before the clock's day (7 May): 2 languages and 2
    # formats.
    async def listed() -> list[tuple[str, str, str]]:
        reply = await r.stub.ListDailyReports(pb.ListDailyReportsRequest(), metadata=MANAGER)
        return [(d.day, d.language, d.format) for d in reply.reports]

    first = await eventually(listed, lambda found: len(found) == 4, 30)
    assert {day for day, _, _ in first} == {"2026-05-07"}

    await projected(r, nats_server)
    daily = DailyReporter(r.service.uow, ReportQueries(r.service.uow, r.clock), r.clock)
    r.clock.now = datetime(2026, 5, 9, 15, 59, tzinfo=UTC)  # 23:59 on 9 May in Shanghai
    # 8 May has ended: its (empty) report, in both languages and formats.
    assert {d.day.isoformat() for d in await daily.produce_due()} == {"2026-05-08"}
    r.clock.now += timedelta(minutes=2)  # 00:01 on 10 May
    made = await daily.produce_due()
    assert sorted((d.day.isoformat(), d.language, d.format) for d in made) == [
        ("2026-05-09", "en", "csv"),
        ("2026-05-09", "en", "html"),
        ("2026-05-09", "zh-CN", "csv"),
        ("2026-05-09", "zh-CN", "html"),
    ]
    assert await daily.produce_due() == []  # once a day

    got = await r.stub.GetDailyReport(
        pb.GetDailyReportRequest(day="2026-05-09", language="zh-CN"), metadata=MANAGER
    )
    assert got.info.format == "html" and got.info.size_bytes == len(got.content)
    page = got.content.decode()
    assert "2026-05-09 ~ 2026-05-09" in page and "宽带新装" in page
    # The same page as an export of that day at that moment.
    export = await r.stub.ExportReport(
        pb.ExportReportRequest(
            report="all",
            format="html",
            query=pb.ReportQuery(start_date="2026-05-09", end_date="2026-05-09", language="zh-CN"),
        ),
        metadata=MANAGER,
    )
    assert export.sha256 == got.info.sha256

    # Each stored document went out through the outbox as reporting.daily_report_produced, for
    # the archive: 3 days x 2 languages x 2 formats, each with its content and hash.
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()

        async def published() -> int:
            return int((await js.stream_info("REPORTING")).state.messages)

        await eventually(published, lambda n: n == 12, 30)
        produced: dict[tuple[str, str, str], reporting_events_pb2.DailyReportProduced] = {}
        for seq in range(1, 13):
            env = envelope_pb2.Envelope()
            env.ParseFromString((await js.get_msg("REPORTING", seq)).data or b"")
            assert env.type == "reporting.daily_report_produced" and env.producer == "reporting"
            event = reporting_events_pb2.DailyReportProduced()
            assert env.payload.Unpack(event)
            produced[(event.day, event.language, event.format)] = event
    finally:
        await nc.drain()
    assert len(produced) == 12
    mine = produced[("2026-05-09", "zh-CN", "html")]
    assert (mine.sha256, mine.content, mine.size_bytes) == (
        got.info.sha256,
        got.content,
        len(got.content),
    )
    assert mine.media_type == got.info.media_type and mine.HasField("generated_at")


async def test_a_day_ended_long_ago_waits_for_the_consumers_before_its_report(
    running: Running,
) -> None:
    """A pod that starts after midnight plus the grace, with nothing projected past midnight:
    the report waits until the consumers have read what the streams hold (it is never
    remade), and the service's own check says when they have."""
    r = running
    backlog = {"left": 5}

    async def caught_up() -> bool:
        return backlog["left"] == 0

    daily = DailyReporter(
        r.service.uow, ReportQueries(r.service.uow, r.clock), r.clock, caught_up=caught_up
    )
    r.clock.now = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)  # 12:00 on 20 May in Shanghai
    assert await daily.produce_due() == []
    backlog["left"] = 0
    made = await daily.produce_due()
    assert {(d.day.isoformat(), d.language) for d in made} == {
        ("2026-05-19", "en"),
        ("2026-05-19", "zh-CN"),
    }
    # The running service's consumer of the ORDER stream: nothing published, nothing left.
    order_consumer = next(c for c in r.service.consumers if c.stream.name == "ORDER")
    assert await eventually(order_consumer.backlog, lambda b: b is not None, 30) == 0
