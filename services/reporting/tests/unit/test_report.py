"""The order report's shape."""

from __future__ import annotations

from datetime import UTC, datetime

from orderline_reporting.domain import states
from orderline_reporting.domain.report import order_report

NOW = datetime(2026, 5, 9, tzinfo=UTC)


def test_report_lists_every_state_in_lifecycle_order_with_zeros() -> None:
    report = order_report(
        state_counts={"completed": 2, "inProgress": 1},
        business_type_counts={"iptv": 1, "broadband_install": 2},
        dossiers_sealed=2,
        events_projected=11,
        generated_at=NOW,
    )
    assert report.total_orders == 3
    assert [s for s, _ in report.by_state] == list(states.ORDER_STATES)
    assert dict(report.by_state) == {s: 0 for s in states.ORDER_STATES} | {
        "completed": 2,
        "inProgress": 1,
    }
    assert report.by_business_type == [("broadband_install", 2), ("iptv", 1)]


def test_orders_of_unknown_business_type_are_counted_as_unknown() -> None:
    report = order_report(
        state_counts={"held": 1},
        business_type_counts={"": 1},
        dossiers_sealed=0,
        events_projected=1,
        generated_at=NOW,
    )
    assert report.by_business_type == [("unknown", 1)]
