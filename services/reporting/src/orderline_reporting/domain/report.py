"""The order report's shape: counts in a stable order, zeros included for every state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from orderline_reporting.domain.states import ORDER_STATES

UNKNOWN_BUSINESS_TYPE = "unknown"


@dataclass(frozen=True)
class OrderReport:
    total_orders: int
    by_state: list[tuple[str, int]]
    by_business_type: list[tuple[str, int]]
    dossiers_sealed: int
    events_projected: int
    generated_at: datetime


def order_report(
    *,
    state_counts: Mapping[str, int],
    business_type_counts: Mapping[str, int],
    dossiers_sealed: int,
    events_projected: int,
    generated_at: datetime,
) -> OrderReport:
    """Every TMF641 state in lifecycle order (a state no order is in shows 0); business types
    by name, an order whose type is not yet known counted as `unknown`."""
    by_type: dict[str, int] = {}
    for business_type, count in business_type_counts.items():
        key = business_type or UNKNOWN_BUSINESS_TYPE
        by_type[key] = by_type.get(key, 0) + count
    return OrderReport(
        total_orders=sum(state_counts.values()),
        by_state=[(state, state_counts.get(state, 0)) for state in ORDER_STATES],
        by_business_type=sorted(by_type.items()),
        dossiers_sealed=dossiers_sealed,
        events_projected=events_projected,
        generated_at=generated_at,
    )
