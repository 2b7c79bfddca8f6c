"""Milestone due times and jeopardy (docs/order-lifecycle.md#sla-and-jeopardy).

Each milestone of an order is due at the order's creation + its business type's SLA for the
milestone (catalogue `sla`), fixed when the order is recorded: a later catalogue change does not
move the due times of orders already taken. A milestone past its due time and not reached is in
**jeopardy**; the sweep raises it once per order and milestone (an event, and the time kept on
the order), never again, even when the milestone stays unreached.

Pure: every time is given, never read from a clock here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from orderline_intake.domain.states import OrderState

# An order in one of these no longer works towards its milestones: nothing of it is in jeopardy
# (as the management report counts it: services/reporting, domain/figures.py).
STOPPED = frozenset({OrderState.REJECTED, OrderState.FAILED, OrderState.CANCELLED})


def due_times(created_at: datetime, sla: Mapping[str, timedelta]) -> dict[str, datetime]:
    """When each milestone of the SLA is due."""
    return {milestone: created_at + after for milestone, after in sla.items()}


def next_check(
    state: OrderState,
    dues: Mapping[str, datetime],
    reached: Mapping[str, datetime],
    raised: Mapping[str, datetime],
) -> datetime | None:
    """The earliest due time of a milestone neither reached nor raised: when the sweep must look
    at the order next (None: never again, unless it changes)."""
    if state in STOPPED:
        return None
    open_dues = [at for m, at in dues.items() if m not in reached and m not in raised]
    return min(open_dues, default=None)


def past_due(
    state: OrderState,
    dues: Mapping[str, datetime],
    reached: Mapping[str, datetime],
    raised: Mapping[str, datetime],
    now: datetime,
) -> list[str]:
    """The milestones to raise jeopardy for now: due before `now`, not reached, not raised
    before; earliest due first."""
    if state in STOPPED:
        return []
    late = [m for m, at in dues.items() if at < now and m not in reached and m not in raised]
    return sorted(late, key=lambda m: (dues[m], m))


def in_jeopardy(
    state: OrderState,
    dues: Mapping[str, datetime],
    reached: Mapping[str, datetime],
    raised: Mapping[str, datetime],
) -> tuple[str, datetime] | None:
    """The earliest-due milestone raised and still not reached, with its due time; None when
    the order is not in jeopardy (nothing raised is still open, or it stopped)."""
    if state in STOPPED:
        return None
    open_raised = [(dues[m], m) for m in raised if m in dues and m not in reached]
    if not open_raised:
        return None
    at, milestone = min(open_raised)
    return milestone, at
