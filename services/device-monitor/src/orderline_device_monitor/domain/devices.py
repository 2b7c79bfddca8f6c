"""Per device, the evaluator's decisions turned into alarms, and the answers given from them.

The book keeps per device the evaluator's state and the open alarm of each category the
evaluator holds at abnormal level. ``observe`` runs one reading through the evaluator and says
which alarms to open, close or re-grade; ``health_of`` answers from the evaluator's health,
with heartbeat loss brought up to the time of the question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from orderline_device_monitor.domain import evaluator
from orderline_device_monitor.domain.health import (
    CATEGORY_ORDER,
    Category,
    ClearedAlarm,
    DeviceState,
    Finding,
    HealthChange,
    HealthState,
    HealthView,
    Observation,
    OpenAlarm,
    RaisedAlarm,
    Reading,
    Severity,
)
from orderline_device_monitor.domain.rules import RuleSet


def observe(
    state: DeviceState | None,
    reading: Reading,
    *,
    received_at: datetime,
    new_alarm_id: Callable[[], str],
    rules: RuleSet,
    model: str | None = None,
) -> Observation:
    """Evaluates one reading against the device's state: the next state and the change, if any.

    Steady state gives no change; a change is any decision of the evaluator, and it opens or
    closes alarms only when the set of abnormal categories moved.
    """
    current = state or DeviceState(reading.device_id)
    at = min(reading.observed_at or received_at, received_at)
    if current.last_observed is not None and at < current.last_observed:
        return Observation(current, None, out_of_order=True)
    step = evaluator.observe_sample(
        current.evaluation, reading, at, rules, model=model, received_at=received_at
    )
    verdict = evaluator.health(step.state)
    severity = {f.category: f.severity for f in verdict.failing}
    abnormal = set(verdict.abnormal_categories)
    model_rules = rules.for_model(step.state.model)
    values = reading.values()

    def finding(category: Category) -> Finding:
        readings, detail = model_rules.categories[category].findings(values)
        if not detail:
            # Flapping raised it on a reading that is itself fine.
            detail = f"{category.value} flapping"
        return Finding(category, readings, detail, severity[category] or Severity.MAJOR)

    raised = tuple(
        RaisedAlarm(new_alarm_id(), finding(c))
        for c in CATEGORY_ORDER
        if c in abnormal and c not in current.open_alarms
    )
    cleared = tuple(
        ClearedAlarm(c, current.open_alarms[c])
        for c in CATEGORY_ORDER
        if c in current.open_alarms and c not in abnormal
    )
    regraded = tuple(
        (alarm, sev)
        for c, alarm in current.open_alarms.items()
        if c in abnormal and (sev := severity[c]) is not None and sev != alarm.severity
    )
    open_alarms = {
        c: replace(a, severity=severity[c] or a.severity)
        for c, a in current.open_alarms.items()
        if c in abnormal
    }
    for r in raised:
        open_alarms[r.finding.category] = OpenAlarm(r.alarm_id, at, r.finding.severity)
    next_state = replace(
        current,
        open_alarms=open_alarms,
        last_seen=received_at,
        last_observed=at,
        evaluation=step.state,
    )
    if not raised and not cleared and not step.transitions:
        return Observation(next_state, None)
    change = HealthChange(
        device_id=reading.device_id,
        at=at,
        raised=raised,
        cleared=cleared,
        abnormal_after=frozenset(open_alarms),
        reading=reading,
        transitions=step.transitions,
        severity_changes=regraded,
    )
    return Observation(next_state, change)


def tick(
    state: DeviceState, now: datetime, rules: RuleSet
) -> tuple[DeviceState, tuple[evaluator.Transition, ...]]:
    """A clock tick for one device: heartbeat loss, told once."""
    if state.evaluation is None:
        return state, ()
    step = evaluator.tick(state.evaluation, now, rules)
    if not step.transitions:
        return state, ()
    return replace(state, evaluation=step.state), step.transitions


def health_of(state: DeviceState, *, now: datetime, rules: RuleSet) -> HealthView:
    """ABNORMAL while an alarm is open; otherwise UNKNOWN when communication is lost (no sample
    within the model's heartbeat interval, or none since the process started), else GOOD.

    A degraded device (something pending, or only warning/minor) is GOOD on the wire: it may
    be worked on."""
    evaluation = state.evaluation
    if evaluation is not None:
        evaluation = evaluator.tick(evaluation, now, rules).state
    lost = evaluation is None or evaluation.last_heard_at is None or evaluation.communication_lost
    first = state.first_open_alarm()
    if first is not None:
        health = HealthState.ABNORMAL
    elif lost:
        health = HealthState.UNKNOWN
    else:
        health = HealthState.GOOD
    return HealthView(
        device_id=state.device_id,
        state=health,
        abnormal=tuple(c for c in CATEGORY_ORDER if c in state.open_alarms),
        last_seen=state.last_seen,
        open_alarm_id=first.alarm_id if first else "",
        stale=lost,
    )
