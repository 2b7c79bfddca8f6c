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
from orderline_device_monitor.domain.alarms import recorrelate
from orderline_device_monitor.domain.condition import (
    Condition,
    IllegalTransition,
    Trigger,
    condition_of,
    next_condition,
)
from orderline_device_monitor.domain.health import (
    ALARM_CATEGORIES,
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
    new_device_state,
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
    quiet = observe_quiet(state, reading, received_at=received_at, rules=rules, model=model)
    if quiet is not None:
        return Observation(quiet, None)
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
    # Communication lost stands until the device is heard again (any sample restores it).
    standing = abnormal | (
        {Category.COMMUNICATION} if step.state.communication_lost else set[Category]()
    )
    cleared = tuple(
        ClearedAlarm(c, current.open_alarms[c])
        for c in ALARM_CATEGORIES
        if c in current.open_alarms and c not in standing
    )
    regraded = tuple(
        (alarm, sev)
        for c, alarm in current.open_alarms.items()
        if c in abnormal and (sev := severity[c]) is not None and sev != alarm.severity
    )
    before = current.evaluation
    repeated_categories = {
        c for c in current.open_alarms if c in abnormal and _came_back(before, step.state, c)
    }
    open_alarms = {
        c: replace(
            a,
            severity=severity.get(c) or a.severity,
            repeat_count=a.repeat_count + (1 if c in repeated_categories else 0),
        )
        for c, a in current.open_alarms.items()
        if c in standing
    }
    for r in raised:
        open_alarms[r.finding.category] = OpenAlarm(r.alarm_id, at, r.finding.severity)
    open_alarms, moved = recorrelate(open_alarms)
    new_ids = {r.alarm_id for r in raised}
    raised = tuple(replace(r, parent_id=open_alarms[r.finding.category].parent_id) for r in raised)
    correlated = tuple(m for m in moved if m.alarm.alarm_id not in new_ids)
    repeated = tuple((c, open_alarms[c]) for c in CATEGORY_ORDER if c in repeated_categories)
    next_state = replace(
        current,
        open_alarms=open_alarms,
        last_seen=received_at,
        last_observed=at,
        evaluation=step.state,
    )
    if not raised and not cleared and not step.transitions and not repeated and not correlated:
        return Observation(next_state, None)
    change = HealthChange(
        device_id=reading.device_id,
        at=at,
        raised=raised,
        cleared=cleared,
        abnormal_after=next_state.abnormal,
        reading=reading,
        transitions=step.transitions,
        severity_changes=regraded,
        repeated=repeated,
        correlated=correlated,
        open_after=open_alarms,
        abnormal_before=current.abnormal,
        condition=condition_of(
            abnormal=bool(next_state.abnormal),
            failing=bool(verdict.failing),
            under_maintenance=current.under_maintenance,
        ),
    )
    return Observation(next_state, change)


def observe_quiet(
    state: DeviceState | None,
    reading: Reading,
    *,
    received_at: datetime,
    rules: RuleSet,
    model: str | None = None,
) -> DeviceState | None:
    """The state ``observe`` gives, with no change, when a healthy reading comes from a healthy
    device with no open alarm (``evaluator.quiet_sample``): nothing to raise, clear, re-grade
    or correlate. None when that is not the case (``observe`` takes every step then)."""
    observed = reading.observed_at or received_at
    at = received_at if received_at < observed else observed
    if state is None:
        evaluation = evaluator.quiet_sample(
            None, reading, at, rules, model=model, received_at=received_at
        )
        if evaluation is None:
            return None
        return DeviceState(reading.device_id, {}, received_at, at, evaluation, False)
    if state.open_alarms or (state.last_observed is not None and at < state.last_observed):
        return None
    evaluation = evaluator.quiet_sample(
        state.evaluation, reading, at, rules, model=model, received_at=received_at
    )
    if evaluation is None:
        return None
    # The (empty) mapping of open alarms is kept, never changed in place: one object less per
    # sample for the collector.
    return DeviceState(
        state.device_id, state.open_alarms, received_at, at, evaluation, state.under_maintenance
    )


QuietObserver = Callable[[DeviceState | None, Reading, str | None], DeviceState | None]


def quiet_observer(rules: RuleSet, received_at: datetime) -> QuietObserver:
    """``observe_quiet(state, reading, received_at=received_at, rules=rules, model=model)`` as
    ``observer(state, reading, model)``, for a batch received at one time (one call per sample).

    The common case, a device heard before whose categories are all quiet, is ``observe_quiet``
    and ``evaluator.quiet_sample`` written out in one body: the same checks, each model's quiet
    test looked up once per batch, and the two new states built through their slots. Anything
    else (a device not seen yet, no evaluation yet) is ``observe_quiet`` itself.
    ``test_evaluator_shortcuts`` checks the two agree."""
    tests: dict[str | None, Callable[[Reading], bool] | None] = {}
    quiet_type = evaluator.QuietCategories
    new_evaluation = evaluator.new_evaluation

    def observer(
        state: DeviceState | None, reading: Reading, model: str | None
    ) -> DeviceState | None:
        if state is None or (evaluation := state.evaluation) is None:
            return observe_quiet(state, reading, received_at=received_at, rules=rules, model=model)
        if state.open_alarms or evaluation.communication_lost:
            return None
        before = evaluation.categories
        if type(before) is not quiet_type:
            if before:
                return None
            return observe_quiet(state, reading, received_at=received_at, rules=rules, model=model)
        observed = reading.observed_at or received_at
        at = received_at if received_at < observed else observed
        last = state.last_observed
        if last is not None and at < last:
            return None
        last = evaluation.last_sample_at
        if last is not None and at < last:
            return None
        current_model = evaluation.model if model is None else model
        if current_model in tests:
            test = tests[current_model]
        else:
            test = tests[current_model] = rules.for_model(current_model).quiet_test
        if test is None or not test(reading):
            return None
        return new_device_state(
            state.device_id,
            state.open_alarms,
            received_at,
            at,
            new_evaluation(
                evaluation.device_id,
                current_model,
                before.following,
                at,
                received_at,
                False,
            ),
            state.under_maintenance,
        )

    return observer


def _came_back(
    before: evaluator.DeviceEvaluation | None,
    after: evaluator.DeviceEvaluation,
    category: Category,
) -> bool:
    """The fault returned on this sample after it had recovered (keep-firing, flapping)."""
    old = before.category(category).history if before is not None else ()
    new = after.category(category).history
    return bool(old) and not old[-1] and bool(new) and new[-1]


def heartbeat(
    state: DeviceState,
    now: datetime,
    rules: RuleSet,
    *,
    new_alarm_id: Callable[[], str],
) -> tuple[DeviceState, HealthChange | None]:
    """A clock tick for one device: on lost communication, the communication alarm (a root:
    the device's other open alarms become its children). Told once."""
    after, told = tick(state, now, rules)
    lost = [t for t in told if t.kind is evaluator.Kind.COMMUNICATION_LOST]
    if not told:
        return state, None
    raised: tuple[RaisedAlarm, ...] = ()
    open_alarms = dict(after.open_alarms)
    if lost and Category.COMMUNICATION not in open_alarms:
        interval = rules.for_model(
            after.evaluation.model if after.evaluation else None
        ).heartbeat_interval.total_seconds()
        detail = f"no telemetry for more than {interval:g} s"
        alarm_id = new_alarm_id()
        open_alarms[Category.COMMUNICATION] = OpenAlarm(alarm_id, now, Severity.MAJOR)
        raised = (
            RaisedAlarm(alarm_id, Finding(Category.COMMUNICATION, {}, detail, Severity.MAJOR)),
        )
    open_alarms, moved = recorrelate(open_alarms)
    after = replace(after, open_alarms=open_alarms)
    return after, HealthChange(
        device_id=state.device_id,
        at=now,
        raised=raised,
        cleared=(),
        abnormal_after=after.abnormal,
        reading=None,
        transitions=told,
        correlated=tuple(m for m in moved if m.category is not Category.COMMUNICATION),
        open_after=open_alarms,
        abnormal_before=state.abnormal,
        condition=condition_of(
            abnormal=True, failing=True, under_maintenance=after.under_maintenance
        ),
    )


def start_maintenance(state: DeviceState) -> DeviceState:
    """A person starts work on the device (the ticket's acknowledgement, item 5)."""
    if state.under_maintenance:
        raise IllegalTransition(Condition.UNDER_MAINTENANCE, Trigger.MAINTENANCE_STARTED)
    return replace(state, under_maintenance=True)


def end_maintenance(state: DeviceState) -> DeviceState:
    if not state.under_maintenance:
        raise IllegalTransition(Condition.HEALTHY, Trigger.MAINTENANCE_ENDED)
    next_condition(Condition.UNDER_MAINTENANCE, Trigger.MAINTENANCE_ENDED)
    return replace(state, under_maintenance=False)


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
    failing = evaluator.health(evaluation).failing if evaluation is not None else ()
    return HealthView(
        device_id=state.device_id,
        state=health,
        abnormal=tuple(c for c in CATEGORY_ORDER if c in state.abnormal),
        last_seen=state.last_seen,
        open_alarm_id=first.alarm_id if first else "",
        stale=lost,
        # Abnormal exactly when the wire says ABNORMAL or UNKNOWN, so the two never disagree
        # (an alarm a person cleared while the fault lasts is not abnormal until raised again).
        condition=condition_of(
            abnormal=health is not HealthState.GOOD,
            failing=bool(failing),
            under_maintenance=state.under_maintenance,
        ),
        failing=failing,
        open_alarms=dict(state.open_alarms),
    )
