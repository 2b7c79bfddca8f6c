"""The event path's cheaper conversions give exactly what the ones they replaced gave (issue
#8): each test compares the new function with the old way on the report fixture's events."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from orderline_reporting.adapters.repository import fact_row
from orderline_reporting.domain import facts as F

from .report_fixture import events


def known_facts() -> list[F.Fact]:
    found = [
        F.extract(
            e.event_type, e.event_id, e.at, e.payload, order_id=e.order_id, device_id=e.device_id
        )
        for e in events()
    ]
    return [f for f in found if f is not None]


def test_a_fact_row_is_asdict_of_the_fact() -> None:
    scored = F.Fact("ev-x", F.FEEDBACK, datetime(2026, 5, 9, tzinfo=UTC), "A", value=4)
    for fact in [*known_facts(), scored]:
        row = fact_row(fact)
        assert list(row.items()) == list(asdict(fact).items())  # same keys in the same order
        assert row is not vars(fact)  # a copy: nothing done to the row reaches the fact
