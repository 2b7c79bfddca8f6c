"""The management report's figures, computed from report facts (domain/facts.py) and the
orders projection. Pure: no I/O, no clock (the caller passes `now`).

Two scopes, both from the window (domain/window.py):
- orders, stages and review count the **cohort**: the orders created in the window, with
  everything that has happened to them since (a stage that ends after the window still counts
  for the order it belongs to);
- devices and customers count **what happened in the window**: alarms raised, follow-ups and
  feedback recorded, cases opened in it (their repair or closing may come later).

Definitions (docs/reporting.md):
- a stage is named by the milestone that ends it; it starts at the latest earlier milestone
  the order reached, or at its creation. Each milestone counts at its first occurrence;
- percentiles are nearest-rank (the smallest value with at least p% of the values at or
  below it), so every figure is a time that was measured;
- the slowest stage is the one with the highest p90 (ties: the earlier stage);
- an SLA is due at creation + the business type's duration for the milestone (catalogue); a
  milestone reached after it is *late*; one not reached while its due time has passed is
  *overdue*, counted for the order's first milestone not reached only, and only while the
  order is not rejected, failed or cancelled; an order with an overdue milestone is *in
  jeopardy*. SLA breaches = late + overdue;
- first pass: an order approved with no information request and no amendment before the
  approval, among the orders decided (approved or rejected);
- provisioning rates are over the orders that started provisioning: activated, failed,
  held, adjusted (each order counted once whatever its retries);
- a device fault is an alarm raised not under another (root or standalone); repaired when
  cleared; time to repair from raise to clear;
- satisfaction = satisfied / (satisfied + problem reported): among the customers reached.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from orderline_reporting.domain import facts as F
from orderline_reporting.domain.facts import Fact
from orderline_reporting.domain.labels import UNKNOWN_MODEL
from orderline_reporting.domain.states import ORDER_STATES
from orderline_reporting.domain.window import Window

MILESTONES = (
    "review_approved",
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
    "dossier_archived",
)
END_TO_END = "end_to_end"
AUTO_REVIEWER = "intake/auto-review"
_STOPPED = frozenset({"rejected", "failed", "cancelled"})


@dataclass(frozen=True)
class CohortOrder:
    order_id: str
    business_type: str
    state: str
    created_at: datetime


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (0 < p <= 100); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _seconds(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds())


# --- orders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFigures:
    total: int
    # (first day of the period, business type, state, orders), sorted.
    rows: list[tuple[date, str, str, int]]
    by_state: list[tuple[str, int]]
    by_business_type: list[tuple[str, int]]


def order_figures(window: Window, cohort: Iterable[CohortOrder]) -> OrderFigures:
    cells: Counter[tuple[date, str, str]] = Counter()
    states: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for order in cohort:
        state = order.state or "acknowledged"
        business_type = order.business_type or "unknown"
        cells[(window.bucket(order.created_at), business_type, state)] += 1
        states[state] += 1
        types[business_type] += 1
    rank = {s: i for i, s in enumerate(ORDER_STATES)}
    rows = sorted(
        ((d, b, s, n) for (d, b, s), n in cells.items()),
        key=lambda r: (r[0], r[1], rank.get(r[2], len(rank)), r[2]),
    )
    return OrderFigures(
        total=sum(states.values()),
        rows=rows,
        by_state=[(s, states.get(s, 0)) for s in ORDER_STATES]
        + sorted((s, n) for s, n in states.items() if s not in rank),
        by_business_type=sorted(types.items()),
    )


# --- stages, SLA and provisioning ------------------------------------------------------------


@dataclass(frozen=True)
class StageTime:
    stage: str
    samples: int
    p50: float | None  # seconds
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class MilestoneSla:
    milestone: str
    met: int
    late: int
    overdue: int


@dataclass(frozen=True)
class StageFigures:
    stages: list[StageTime]  # every milestone's stage, in order of work
    end_to_end: StageTime
    slowest_stage: str  # "" when nothing was measured
    sla: list[MilestoneSla]
    orders_in_jeopardy: int
    sla_breaches: int
    provisioning_started: int
    activation: Rate
    fallout: Rate
    held: Rate
    adjustment: Rate


def _by_order(facts: Iterable[Fact], orders: Mapping[str, CohortOrder]) -> dict[str, list[Fact]]:
    result: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        if fact.order_id in orders:
            result[fact.order_id].append(fact)
    return result


def _first_milestones(order_facts: Iterable[Fact]) -> dict[str, datetime]:
    reached: dict[str, datetime] = {}
    for fact in order_facts:
        if (
            fact.kind == F.MILESTONE
            and fact.code in MILESTONES
            and (fact.code not in reached or fact.at < reached[fact.code])
        ):
            reached[fact.code] = fact.at
    return reached


def _stage_time(stage: str, values: list[float]) -> StageTime:
    return StageTime(
        stage, len(values), percentile(values, 50), percentile(values, 90), percentile(values, 99)
    )


def stage_figures(
    cohort: Iterable[CohortOrder],
    facts: Iterable[Fact],
    sla: Mapping[str, Mapping[str, timedelta]],
    now: datetime,
) -> StageFigures:
    orders = {o.order_id: o for o in cohort}
    per_order = _by_order(facts, orders)
    durations: dict[str, list[float]] = {m: [] for m in MILESTONES}
    end_to_end: list[float] = []
    met: Counter[str] = Counter()
    late: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    jeopardy = 0
    started = activated = failed = held = adjusted = 0
    for order_id, order in orders.items():
        order_facts = per_order.get(order_id, [])
        reached = _first_milestones(order_facts)
        previous = order.created_at
        for milestone in MILESTONES:
            at = reached.get(milestone)
            if at is None:
                continue
            durations[milestone].append(_seconds(at - previous))
            previous = max(previous, at)
        completions = [f.at for f in order_facts if f.kind == F.COMPLETED]
        if completions:
            end_to_end.append(_seconds(min(completions) - order.created_at))
        # SLA
        due_by = sla.get(order.business_type, {})
        first_open_counted = False
        for milestone in MILESTONES:
            if milestone not in due_by:
                continue
            due = order.created_at + due_by[milestone]
            at = reached.get(milestone)
            if at is not None:
                (late if at > due else met)[milestone] += 1
            elif not first_open_counted and order.state not in _STOPPED:
                first_open_counted = True
                if now > due:
                    overdue[milestone] += 1
                    jeopardy += 1
        # provisioning
        kinds = {f.kind for f in order_facts}
        if F.JOB_STARTED in kinds:
            started += 1
            activated += "service_activated" in reached
            failed += F.JOB_FAILED in kinds
            held += F.JOB_HELD in kinds
            adjusted += F.ADJUSTMENT in kinds
    stages = [_stage_time(m, durations[m]) for m in MILESTONES]
    measured = [s for s in stages if s.p90 is not None]
    slowest = ""
    if measured:
        slowest = max(measured, key=lambda s: (s.p90 or 0.0, -MILESTONES.index(s.stage))).stage
    milestones_with_sla = [m for m in MILESTONES if any(m in d for d in sla.values())]
    return StageFigures(
        stages=stages,
        end_to_end=_stage_time(END_TO_END, end_to_end),
        slowest_stage=slowest,
        sla=[MilestoneSla(m, met[m], late[m], overdue[m]) for m in milestones_with_sla],
        orders_in_jeopardy=jeopardy,
        sla_breaches=sum(late.values()) + sum(overdue.values()),
        provisioning_started=started,
        activation=Rate(activated, started),
        fallout=Rate(failed, started),
        held=Rate(held, started),
        adjustment=Rate(adjusted, started),
    )


# --- review ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFigures:
    decided: int
    approved: int
    auto_approved: int
    rejected: int
    first_pass: Rate
    queued: int  # orders sent to the review queue at least once
    info_requested: int  # orders asked for information at least once
    rejection_reasons: list[tuple[str, int]]  # most frequent first
    information_reasons: list[tuple[str, int]]
    queue_reasons: list[tuple[str, int]]


def _top(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _codes(value: str) -> list[str]:
    return [c for c in dict.fromkeys(value.split(F.CODE_SEPARATOR)) if c]


def review_figures(cohort: Iterable[CohortOrder], facts: Iterable[Fact]) -> ReviewFigures:
    orders = {o.order_id: o for o in cohort}
    per_order = _by_order(facts, orders)
    approved = auto = rejected = first_pass = queued = asked = 0
    rejection: Counter[str] = Counter()
    information: Counter[str] = Counter()
    queue: Counter[str] = Counter()
    for order_id in orders:
        order_facts = sorted(per_order.get(order_id, []), key=lambda f: f.at)
        approval = next(
            (f for f in order_facts if f.kind == F.MILESTONE and f.code == "review_approved"),
            None,
        )
        rejections = [f for f in order_facts if f.kind == F.STATE and f.code == "rejected"]
        requests = [f for f in order_facts if f.kind == F.INFO_REQUESTED]
        amendments = [f for f in order_facts if f.kind == F.AMENDED]
        queued_facts = [f for f in order_facts if f.kind == F.REVIEW_QUEUED]
        for f in requests:
            information.update(_codes(f.code))
        for f in queued_facts:
            queue.update(_codes(f.code))
        queued += bool(queued_facts)
        asked += bool(requests)
        if approval is not None:
            approved += 1
            auto += approval.detail == AUTO_REVIEWER
            if not any(f.at <= approval.at for f in requests + amendments):
                first_pass += 1
        elif rejections:
            rejected += 1
            for code in _codes(rejections[0].detail):
                rejection[code] += 1
    decided = approved + rejected
    return ReviewFigures(
        decided=decided,
        approved=approved,
        auto_approved=auto,
        rejected=rejected,
        first_pass=Rate(first_pass, decided),
        queued=queued,
        info_requested=asked,
        rejection_reasons=_top(rejection),
        information_reasons=_top(information),
        queue_reasons=_top(queue),
    )


# --- devices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRow:
    model: str
    category: str
    faults: int
    repaired: int
    mean_time_to_repair: float | None  # seconds, over the repaired ones


@dataclass(frozen=True)
class DeviceFigures:
    faults: int
    repaired: int
    mean_time_to_repair: float | None
    devices_affected: int
    by_model_and_category: list[FaultRow]
    by_category: list[FaultRow]  # model ""


def _fault_row(model: str, category: str, repairs: list[float | None]) -> FaultRow:
    done = [r for r in repairs if r is not None]
    return FaultRow(
        model, category, len(repairs), len(done), sum(done) / len(done) if done else None
    )


def device_figures(window: Window, facts: Iterable[Fact]) -> DeviceFigures:
    raised: dict[str, Fact] = {}
    cleared: dict[str, datetime] = {}
    for fact in facts:
        if fact.kind == F.ALARM_RAISED and not fact.detail and window.contains(fact.at):
            if fact.ref not in raised or fact.at < raised[fact.ref].at:
                raised[fact.ref] = fact
        elif fact.kind == F.ALARM_CLEARED and (
            fact.ref not in cleared or fact.at < cleared[fact.ref]
        ):
            cleared[fact.ref] = fact.at
    cells: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    categories: dict[str, list[float | None]] = defaultdict(list)
    everything: list[float | None] = []
    for alarm_id, fact in raised.items():
        clear = cleared.get(alarm_id)
        repair = _seconds(clear - fact.at) if clear is not None else None
        category = fact.code or "unspecified"
        cells[(fact.model or UNKNOWN_MODEL, category)].append(repair)
        categories[category].append(repair)
        everything.append(repair)
    total = _fault_row("", "", everything)
    return DeviceFigures(
        faults=total.faults,
        repaired=total.repaired,
        mean_time_to_repair=total.mean_time_to_repair,
        devices_affected=len({f.device_id for f in raised.values() if f.device_id}),
        by_model_and_category=[_fault_row(m, c, r) for (m, c), r in sorted(cells.items())],
        by_category=[
            _fault_row("", c, r)
            for c, r in sorted(categories.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    )


# --- customers ------------------------------------------------------------------------------

OUTCOMES = ("satisfied", "problem_reported", "not_reached")


@dataclass(frozen=True)
class CustomerFigures:
    follow_ups: int
    by_outcome: list[tuple[str, int]]
    satisfaction: Rate
    reached: Rate
    cases_opened: int
    device_cases: int
    cases_closed: int  # of those opened in the window
    mean_time_to_close: float | None
    feedback: int
    mean_score: float | None
    confirmations: int


def customer_figures(window: Window, facts: Iterable[Fact]) -> CustomerFigures:
    outcomes: Counter[str] = Counter()
    seen_follow_ups: set[str] = set()
    opened: dict[str, Fact] = {}
    closed: dict[str, datetime] = {}
    scores: list[int] = []
    feedback = confirmations = 0
    for fact in facts:
        in_window = window.contains(fact.at)
        if fact.kind == F.FOLLOW_UP and in_window:
            key = fact.ref or fact.event_id
            if key not in seen_follow_ups:
                seen_follow_ups.add(key)
                outcomes[fact.code or "unspecified"] += 1
        elif fact.kind == F.CASE_OPENED and in_window:
            opened.setdefault(fact.ref, fact)
        elif fact.kind == F.CASE_CLOSED:
            if fact.ref not in closed or fact.at < closed[fact.ref]:
                closed[fact.ref] = fact.at
        elif fact.kind == F.FEEDBACK and in_window:
            feedback += 1
            if fact.value is not None:
                scores.append(fact.value)
        elif fact.kind == F.CONFIRMED and in_window:
            confirmations += 1
    times = [_seconds(closed[c] - f.at) for c, f in opened.items() if c in closed]
    satisfied = outcomes.get("satisfied", 0)
    problems = outcomes.get("problem_reported", 0)
    total = sum(outcomes.values())
    return CustomerFigures(
        follow_ups=total,
        by_outcome=[(o, outcomes.get(o, 0)) for o in OUTCOMES]
        + sorted((o, n) for o, n in outcomes.items() if o not in OUTCOMES),
        satisfaction=Rate(satisfied, satisfied + problems),
        reached=Rate(satisfied + problems, total),
        cases_opened=len(opened),
        device_cases=sum(1 for f in opened.values() if f.code == "device"),
        cases_closed=len(times),
        mean_time_to_close=sum(times) / len(times) if times else None,
        feedback=feedback,
        mean_score=sum(scores) / len(scores) if scores else None,
        confirmations=confirmations,
    )


# --- everything -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    window: Window
    generated_at: datetime
    orders: OrderFigures
    stages: StageFigures
    reviews: ReviewFigures
    devices: DeviceFigures
    customers: CustomerFigures


def full_report(
    window: Window,
    cohort: Sequence[CohortOrder],
    facts: Sequence[Fact],
    sla: Mapping[str, Mapping[str, timedelta]],
    now: datetime,
) -> Report:
    return Report(
        window=window,
        generated_at=now,
        orders=order_figures(window, cohort),
        stages=stage_figures(cohort, facts, sla, now),
        reviews=review_figures(cohort, facts),
        devices=device_figures(window, facts),
        customers=customer_figures(window, facts),
    )
