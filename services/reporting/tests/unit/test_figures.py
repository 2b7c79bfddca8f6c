"""Report figures against a known set of orders (report_fixture.py), worked out by hand; the
percentile rule, the window's validation, and the facts the events make."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2, provisioning_events_pb2
from orderline_reporting.app.reports import service_levels
from orderline_reporting.domain import facts as F
from orderline_reporting.domain.figures import (
    CohortOrder,
    FaultRow,
    MilestoneSla,
    Rate,
    Report,
    StageTime,
    full_report,
    percentile,
)
from orderline_reporting.domain.window import Window, parse_window
from orderline_runtime.errors import InvalidArgument

from .report_fixture import NOW, events, states_now

WINDOW = Window("day", date(2026, 5, 9), date(2026, 5, 9), "Asia/Shanghai", "en")


def known_facts() -> list[F.Fact]:
    found = [
        F.extract(
            e.event_type, e.event_id, e.at, e.payload, order_id=e.order_id, device_id=e.device_id
        )
        for e in events()
    ]
    return [f for f in found if f is not None]


def cohort(window: Window, found: list[F.Fact]) -> list[CohortOrder]:
    """What the repository's cohort query gives: orders created in the window, state now."""
    now = {order_id: (business_type, state) for order_id, business_type, state in states_now()}
    return [
        CohortOrder(f.order_id, *now[f.order_id], f.at)
        for f in found
        if f.kind == F.CREATED and window.contains(f.at)
    ]


def report(window: Window = WINDOW) -> Report:
    found = known_facts()
    return full_report(window, cohort(window, found), found, service_levels(), NOW)


def test_orders_by_period_type_and_state() -> None:
    orders = report().orders
    assert orders.total == 5  # F was created the day before (Shanghai time)
    day = date(2026, 5, 9)
    assert orders.rows == [
        (day, "broadband_install", "acknowledged", 1),
        (day, "broadband_install", "inProgress", 1),
        (day, "broadband_install", "completed", 1),
        (day, "broadband_install", "rejected", 1),
        (day, "iptv", "held", 1),
    ]
    assert dict(orders.by_state)["pending"] == 0
    assert orders.by_business_type == [("broadband_install", 4), ("iptv", 1)]


def test_stage_lead_times_percentiles_and_the_slowest_stage() -> None:
    stages = report().stages
    by = {s.stage: s for s in stages.stages}
    assert by["review_approved"] == StageTime("review_approved", 3, 0.0, 18000.0, 18000.0)
    assert by["prechecks_passed"] == StageTime("prechecks_passed", 3, 1200.0, 1800.0, 1800.0)
    assert by["device_configured"] == StageTime("device_configured", 1, 3000.0, 3000.0, 3000.0)
    assert by["tests_passed"].p50 == 7200.0
    assert by["service_activated"].p50 == 1800.0
    assert by["voucher_issued"].p50 == 60.0
    assert by["customer_notified"].p50 == 60.0
    assert by["dossier_archived"].p50 == 300.0
    assert stages.end_to_end == StageTime("end_to_end", 1, 12720.0, 12720.0, 12720.0)
    assert stages.slowest_stage == "review_approved"


def test_sla_breaches_and_jeopardy() -> None:
    stages = report().stages
    sla = {m.milestone: m for m in stages.sla}
    assert sla["review_approved"] == MilestoneSla("review_approved", met=2, late=1, overdue=1)
    assert sla["prechecks_passed"] == MilestoneSla("prechecks_passed", met=3, late=0, overdue=0)
    assert sla["device_configured"] == MilestoneSla("device_configured", met=1, late=0, overdue=2)
    assert sla["dossier_archived"] == MilestoneSla("dossier_archived", met=1, late=0, overdue=0)
    assert stages.orders_in_jeopardy == 3  # B, D, E; C is rejected
    assert stages.sla_breaches == 4


def test_activation_fallout_held_and_adjustment_rates() -> None:
    stages = report().stages
    assert stages.provisioning_started == 3
    assert stages.activation == Rate(1, 3)
    assert stages.fallout == Rate(1, 3)
    assert stages.held == Rate(1, 3)
    assert stages.adjustment == Rate(0, 3)


def test_first_pass_rate_and_reasons() -> None:
    reviews = report().reviews
    assert (reviews.decided, reviews.approved, reviews.auto_approved, reviews.rejected) == (
        4,
        3,
        2,
        1,
    )
    assert reviews.first_pass == Rate(2, 4)  # A and E; B was asked for documents first
    assert reviews.queued == 2
    assert reviews.info_requested == 1
    assert reviews.rejection_reasons == [("DOCUMENT_INVALID", 1), ("IDENTITY_NOT_VERIFIED", 1)]
    assert reviews.information_reasons == [("DOCUMENTS_MISSING", 1)]
    assert reviews.queue_reasons == [("PASSPORT_IDENTITY", 1), ("POSSIBLE_DUPLICATE", 1)]


def test_device_faults_by_model_and_category_with_mean_time_to_repair() -> None:
    devices = report().devices
    assert (devices.faults, devices.repaired, devices.devices_affected) == (3, 2, 3)
    assert devices.mean_time_to_repair == 4500.0
    # By the model device-monitor named on each alarm; CPE-8 never named one.
    assert devices.by_model_and_category == [
        FaultRow("B860AV2.1 IPTV STB", "thermal", 1, 0, None),
        FaultRow("HG8245H5 ONT", "thermal", 1, 1, 7200.0),
        FaultRow("unknown", "line", 1, 1, 1800.0),
    ]
    assert [(r.category, r.faults) for r in devices.by_category] == [("thermal", 2), ("line", 1)]


def test_customer_satisfaction_follow_ups_and_cases() -> None:
    customers = report().customers
    assert customers.follow_ups == 4  # f5 is after the window
    assert customers.by_outcome == [("satisfied", 2), ("problem_reported", 1), ("not_reached", 1)]
    assert customers.satisfaction == Rate(2, 3)
    assert customers.reached == Rate(3, 4)
    assert (customers.cases_opened, customers.device_cases, customers.cases_closed) == (1, 1, 1)
    assert customers.mean_time_to_close == 4 * 3600.0
    assert (customers.feedback, customers.mean_score, customers.confirmations) == (0, None, 0)


def test_the_figures_do_not_depend_on_the_order_of_the_facts() -> None:
    found = known_facts()
    forward = full_report(WINDOW, cohort(WINDOW, found), found, service_levels(), NOW)
    backward = full_report(WINDOW, cohort(WINDOW, found)[::-1], found[::-1], service_levels(), NOW)
    assert forward == backward


def test_a_week_by_week_buckets_from_monday() -> None:
    week = Window("week", date(2026, 5, 4), date(2026, 5, 10), "Asia/Shanghai", "en")
    orders = report(week).orders
    assert orders.total == 6  # F too (8 May)
    assert {r[0] for r in orders.rows} == {date(2026, 5, 4)}


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (
        50.0,
        90.0,
        99.0,
    )
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_the_window_defaults_to_the_last_seven_days_in_shanghai() -> None:
    w = parse_window(now=datetime(2026, 5, 9, 17, 0, tzinfo=UTC))  # 10 May, 01:00 Shanghai
    assert (w.first_day, w.last_day, w.period, w.language) == (
        date(2026, 5, 4),
        date(2026, 5, 10),
        "day",
        "en",
    )
    assert w.start == datetime(2026, 5, 3, 16, 0, tzinfo=UTC)
    assert w.end - w.start == timedelta(days=7)


def test_bad_periods_dates_zones_and_languages_are_named_together() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_window(
            now=NOW,
            period="fortnight",
            start_date="2026-13-01",
            time_zone="Mars/Olympus",
            language="fr",
        )
    assert [v.field for v in caught.value.violations] == [
        "query.period",
        "query.time_zone",
        "query.language",
        "query.start_date",
    ]
    with pytest.raises(InvalidArgument) as caught:
        parse_window(now=NOW, start_date="2026-05-10", end_date="2026-05-09")
    assert [v.field for v in caught.value.violations] == ["query.start_date"]
    with pytest.raises(InvalidArgument) as caught:
        parse_window(now=NOW, start_date="2024-01-01", end_date="2026-01-01")
    assert [v.field for v in caught.value.violations] == ["query.end_date"]


def test_facts_of_events_that_exist_and_of_events_to_come() -> None:
    at = datetime(2026, 5, 9, tzinfo=UTC)
    held = F.extract(
        "provisioning.job_held",
        "e1",
        at,
        provisioning_events_pb2.JobHeld(job_id="j", order_id="o", reason_code="X", alarm_id="a"),
    )
    assert held == F.Fact("e1", F.JOB_HELD, at, order_id="o", ref="j", code="X", detail="a")
    raised = F.extract(
        "device.alarm_raised",
        "e2",
        at,
        device_events_pb2.AlarmRaised(
            alarm_id="a", device_id="CPE-1", category=device_pb2.HEALTH_CATEGORY_THERMAL
        ),
    )
    assert raised is not None and (raised.code, raised.device_id) == ("thermal", "CPE-1")
    # Counted only: no report reads a device's health changes.
    assert (
        F.extract("device.health_changed", "e3", at, device_events_pb2.DeviceHealthChanged())
        is None
    )
    # An event to come is read by its field names; the envelope's order id fills in.
    future = F.extract(
        "provisioning.adjustment_applied",
        "e4",
        at,
        provisioning_events_pb2.JobFailed(job_id="j", reason_code="RETUNED"),
        order_id="o",
    )
    assert future == F.Fact("e4", F.ADJUSTMENT, at, order_id="o", ref="j", code="RETUNED")
