"""The alarm evaluator: a pure function of (rules, samples in time order, clock ticks).

Per device and category it debounces (pending period), applies hysteresis (a recovery
condition of its own), keeps a recovered alarm firing for a while, detects flapping the way
Nagios does, and tells only the transitions. Per device it tracks the heartbeat: a tick of the
injected clock later than the model's interval after the last sample is "communication lost".

Pending and keep-firing periods are measured on the samples' own timestamps, never on the wall
clock, so replaying the same samples and ticks against the same rules gives the same
transitions. Semantics, with the reasons for each choice: ``docs/device-rules.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from orderline_device_monitor.domain.health import (
    CATEGORY_ORDER,
    Category,
    Reading,
    Severity,
    slot_setters,
)
from orderline_device_monitor.domain.rules import CategoryRule, ModelRules, RuleSet

FLAP_HISTORY = 21
"""States kept per device and category for flap detection, as in Nagios."""
_LOW_WEIGHT = 0.75
_HIGH_WEIGHT = 1.25


def percent_state_change(history: Sequence[bool]) -> float:
    """Nagios's weighted percent state change over (up to) the last 21 states, oldest first.

    Of the 20 possible changes between 21 states, the oldest weighs 0.75 and the newest 1.25,
    linearly in between; the sum is taken as a percentage of 20. A shorter history is padded at
    the old end with its first state, as Nagios fills a new object's history with its first
    state, so a young history shows no invented changes.
    """
    states = list(history[-FLAP_HISTORY:])
    if not states:
        return 0.0
    states = [states[0]] * (FLAP_HISTORY - len(states)) + states
    changes = 0.0
    for x in range(1, FLAP_HISTORY):
        if states[x] != states[x - 1]:
            changes += (x - 1) * (_HIGH_WEIGHT - _LOW_WEIGHT) / (FLAP_HISTORY - 2) + _LOW_WEIGHT
    return changes * 100.0 / (FLAP_HISTORY - 1)


class Phase(enum.Enum):
    OK = "ok"
    PENDING = "pending"
    RAISED = "raised"


class Kind(enum.Enum):
    RAISED = "raised"
    SEVERITY_CHANGED = "severity_changed"
    CLEARED = "cleared"
    FLAPPING_STARTED = "flapping_started"
    FLAPPING_ENDED = "flapping_ended"
    COMMUNICATION_LOST = "communication_lost"
    COMMUNICATION_RESTORED = "communication_restored"


class Health(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    ABNORMAL = "abnormal"


@dataclass(frozen=True)
class Transition:
    """One decision of the evaluator, with what it was made from."""

    device_id: str
    kind: Kind
    at: datetime
    # The sample time that caused it; for communication lost, the last sample's time.
    sample_at: datetime | None
    rules_version: str
    category: Category | None = None
    severity: Severity | None = None
    previous_severity: Severity | None = None
    detail: str = ""
    readings: Mapping[str, float | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class CategoryState:
    # What the rule says now, flapping or not.
    phase: Phase = Phase.OK
    severity: Severity | None = None
    pending_since: datetime | None = None
    recovering_since: datetime | None = None
    # What was last told: the severity of the raised alarm, None when none is raised.
    announced: Severity | None = None
    # Hysteresis state per sample (True: problem), oldest first, for flap detection.
    history: tuple[bool, ...] = ()
    flapping: bool = False
    # The worst severity seen while flapping (how bad the flapping category is).
    flap_severity: Severity | None = None


# A category with nothing to tell and only OK states in its history is the same value on every
# device: one shared (immutable) state per history length, so a healthy sample needs no new one.
_QUIET_STATES: tuple[CategoryState, ...] = tuple(
    CategoryState(history=(False,) * n) for n in range(FLAP_HISTORY + 1)
)
_QUIET = _QUIET_STATES[0]


def _quiet_length(state: CategoryState) -> int:
    """The history length of a shared quiet state; -1 for any other state."""
    n = len(state.history)
    return n if n <= FLAP_HISTORY and state is _QUIET_STATES[n] else -1


def _shared(state: CategoryState) -> CategoryState:
    """The shared quiet state equal to ``state``, or ``state`` itself."""
    n = len(state.history)
    if n <= FLAP_HISTORY and state.phase is Phase.OK and state == _QUIET_STATES[n]:
        return _QUIET_STATES[n]
    return state


class _QuietCategories(dict[Category, CategoryState]):
    """Every category quiet with one history length (shared, never changed in place): the
    state of a healthy device, and ``following`` the one after another healthy sample."""

    __slots__ = ("following",)
    following: _QuietCategories


_QUIET_MAPS: dict[int, _QuietCategories] = {
    n: _QuietCategories({c: _QUIET_STATES[n] for c in CATEGORY_ORDER})
    for n in range(2, FLAP_HISTORY + 1)
}
for _n, _map in _QUIET_MAPS.items():
    _map.following = _QUIET_MAPS[min(_n + 1, FLAP_HISTORY)]


_Tell = Callable[["Kind", "Severity | None", "Severity | None"], None]


@dataclass(frozen=True, slots=True)
class DeviceEvaluation:
    """The evaluator's state of one device; a value, so a step returns a new one (slotted:
    ``new_evaluation``)."""

    device_id: str
    model: str | None = None
    categories: Mapping[Category, CategoryState] = field(default_factory=dict)
    last_sample_at: datetime | None = None
    # When the last sample arrived: the heartbeat is about hearing from the device, so a device
    # whose clock runs behind is not "lost" while it keeps sending.
    last_heard_at: datetime | None = None
    communication_lost: bool = False

    def category(self, category: Category) -> CategoryState:
        return self.categories.get(category, _QUIET)


QuietCategories = _QuietCategories
"""The type of a shared mapping of quiet categories (``quiet_sample``)."""
_EVALUATION_SLOTS = slot_setters(DeviceEvaluation)


def new_evaluation(
    device_id: str,
    model: str | None,
    categories: Mapping[Category, CategoryState],
    last_sample_at: datetime | None,
    last_heard_at: datetime | None,
    communication_lost: bool,
    _new: Callable[[type[DeviceEvaluation]], DeviceEvaluation] = object.__new__,
    _set: tuple[Callable[[Any, Any], None], ...] = _EVALUATION_SLOTS,
) -> DeviceEvaluation:
    """``DeviceEvaluation(...)`` with every field given in order, through its slots (one per
    sample: ``devices.quiet_observer``)."""
    evaluation = _new(DeviceEvaluation)
    _set[0](evaluation, device_id)
    _set[1](evaluation, model)
    _set[2](evaluation, categories)
    _set[3](evaluation, last_sample_at)
    _set[4](evaluation, last_heard_at)
    _set[5](evaluation, communication_lost)
    return evaluation


@dataclass(frozen=True)
class Failing:
    category: Category
    severity: Severity | None
    # "pending", "raised" or "flapping"
    status: str


@dataclass(frozen=True)
class DeviceHealth:
    device_id: str
    health: Health
    failing: tuple[Failing, ...]
    communication_lost: bool

    @property
    def abnormal_categories(self) -> tuple[Category, ...]:
        return tuple(f.category for f in self.failing if _abnormal(f.category, f))


def _abnormal(category: Category, failing: Failing) -> bool:
    return failing.status != "pending" and is_abnormal_level(category, failing.severity)


@dataclass(frozen=True)
class Step:
    state: DeviceEvaluation
    transitions: tuple[Transition, ...]
    # The sample was older than the last one evaluated for the device: ignored.
    out_of_order: bool = False


def observe_sample(
    state: DeviceEvaluation | None,
    reading: Reading,
    at: datetime,
    rules: RuleSet,
    *,
    model: str | None = None,
    received_at: datetime | None = None,
) -> Step:
    """Evaluates one sample observed at ``at`` (its own timestamp) that arrived at
    ``received_at`` (default: ``at``)."""
    quiet = quiet_sample(state, reading, at, rules, model=model, received_at=received_at)
    if quiet is not None:
        return Step(quiet, ())
    current = state or DeviceEvaluation(reading.device_id, model=model)
    if model is not None and current.model != model:
        # A state restored before its model was known takes it from the first sample.
        current = replace(current, model=model)
    if current.last_sample_at is not None and at < current.last_sample_at:
        return Step(current, (), out_of_order=True)
    model_rules = rules.for_model(current.model)
    out: list[Transition] = []
    if current.communication_lost:
        out.append(
            Transition(current.device_id, Kind.COMMUNICATION_RESTORED, at, at, rules.version)
        )
    before_all = current.categories
    values = reading.values()
    categories = dict(before_all)
    for category in CATEGORY_ORDER:
        rule = model_rules.categories[category]
        before = before_all.get(category, _QUIET)
        n = _quiet_length(before)
        rule_quiet = rule.quiet_test
        if n >= 0 and rule_quiet is not None and rule_quiet(reading):
            # Quiet before and nothing in this sample: quiet after, one more OK in its history.
            categories[category] = _QUIET_STATES[min(max(n, 1) + 1, FLAP_HISTORY)]
            continue
        after, told = _step_category(current.device_id, rule, before, values, at, rules.version)
        categories[category] = _shared(after)
        out.extend(told)
    next_state = DeviceEvaluation(
        current.device_id,
        current.model,
        _quiet_map(categories),
        at,
        received_at or at,
        False,
    )
    return Step(next_state, tuple(out))


def _quiet_map(categories: dict[Category, CategoryState]) -> Mapping[Category, CategoryState]:
    """The shared quiet mapping equal to ``categories`` if there is one, else ``categories``."""
    first = categories.get(CATEGORY_ORDER[0])
    if first is None or len(categories) != len(CATEGORY_ORDER):
        return categories
    shared = _QUIET_MAPS.get(_quiet_length(first))
    if shared is None or any(categories.get(c) is not first for c in CATEGORY_ORDER):
        return categories
    return shared


def quiet_sample(
    state: DeviceEvaluation | None,
    reading: Reading,
    at: datetime,
    rules: RuleSet,
    *,
    model: str | None = None,
    received_at: datetime | None = None,
) -> DeviceEvaluation | None:
    """The state ``observe_sample`` gives when a healthy sample comes from a healthy device
    (every category quiet, communication not lost, the sample in order and matching no
    condition): it tells nothing and every category takes the next shared quiet state. None
    when that is not the case (``observe_sample`` takes the steps then)."""
    if state is None:
        device_id, current_model, before, lost, last = reading.device_id, model, None, False, None
    else:
        device_id, current_model, before = state.device_id, state.model, state.categories
        lost, last = state.communication_lost, state.last_sample_at
        if model is not None:
            current_model = model
    if lost or (last is not None and at < last):
        return None
    if before and type(before) is not _QuietCategories:
        return None
    quiet_test = rules.for_model(current_model).quiet_test
    if quiet_test is None or not quiet_test(reading):
        return None
    return DeviceEvaluation(
        device_id,
        current_model,
        before.following if isinstance(before, _QuietCategories) else _QUIET_MAPS[2],
        at,
        received_at or at,
        False,
    )


def tick(state: DeviceEvaluation, now: datetime, rules: RuleSet) -> Step:
    """A clock tick: communication is lost once no sample came for longer than the interval."""
    if state.communication_lost or state.last_heard_at is None:
        return Step(state, ())
    interval = rules.for_model(state.model).heartbeat_interval
    if now - state.last_heard_at <= interval:
        return Step(state, ())
    lost = Transition(
        state.device_id, Kind.COMMUNICATION_LOST, now, state.last_sample_at, rules.version
    )
    return Step(replace(state, communication_lost=True), (lost,))


def _step_category(
    device_id: str,
    rule: CategoryRule,
    before: CategoryState,
    values: Mapping[str, float | bool],
    at: datetime,
    version: str,
) -> tuple[CategoryState, list[Transition]]:
    severity = rule.severity(values)
    recovered = rule.recovered(values)

    # The rule's own state machine: OK -> PENDING -> RAISED -> (keep firing) -> OK.
    phase, current, pending_since, recovering_since = (
        before.phase,
        before.severity,
        before.pending_since,
        before.recovering_since,
    )
    if phase is Phase.RAISED:
        if severity is not None:
            # Hysteresis holds for the whole episode: the severity rises at once but falls only
            # with the recovery, or a device raised at major would be merely "warning" (fit)
            # again one degree under the major threshold.
            current = max(severity, current) if current is not None else severity
            recovering_since = None
        elif recovered:
            recovering_since = recovering_since or at
            if at - recovering_since >= rule.keep_firing:
                phase, current, recovering_since = Phase.OK, None, None
        else:
            # Between the raise and the recovery thresholds: still raised, and the keep-firing
            # time starts again only once the recovery condition holds.
            recovering_since = None
    elif severity is not None:
        pending_since = pending_since if phase is Phase.PENDING else at
        assert pending_since is not None
        if at - pending_since >= rule.pending:
            phase, current, pending_since = Phase.RAISED, severity, None
        else:
            phase, current = Phase.PENDING, severity
    else:
        phase, current, pending_since = Phase.OK, None, None

    # Flap detection on the hysteresis state: a problem sample counts as a problem, a recovered
    # one as OK, and one in the band between keeps the state before it.
    previous_problem = before.history[-1] if before.history else False
    problem = True if severity is not None else (False if recovered else previous_problem)
    # Before its first sample a category counts as OK, so a first problem is a change.
    history = (*(before.history or (False,)), problem)[-FLAP_HISTORY:]
    # Most histories hold one state throughout: no change to weigh.
    change = percent_state_change(history) if len(set(history)) > 1 else 0.0

    after = CategoryState(
        phase=phase,
        severity=current,
        pending_since=pending_since,
        recovering_since=recovering_since,
        announced=before.announced,
        history=history,
        flapping=before.flapping,
        flap_severity=before.flap_severity,
    )
    told: list[Transition] = []

    def tell(kind: Kind, sev: Severity | None, previous: Severity | None) -> None:
        readings, detail = rule.findings(values)
        told.append(
            Transition(
                device_id,
                kind,
                at,
                at,
                version,
                category=rule.category,
                severity=sev,
                previous_severity=previous,
                detail=detail,
                readings=readings,
            )
        )

    if not before.flapping and change >= rule.flap_high_pct:
        worst = max(
            (s for s in (before.announced, current, severity) if s is not None), default=None
        )
        after = replace(after, flapping=True, flap_severity=worst)
        tell(Kind.FLAPPING_STARTED, worst, before.announced)
        return after, told
    if before.flapping:
        if change >= rule.flap_low_pct:
            worst = max(
                (s for s in (before.flap_severity, severity) if s is not None), default=None
            )
            return replace(after, flap_severity=worst), told
        after = replace(after, flapping=False, flap_severity=None)
        tell(Kind.FLAPPING_ENDED, before.flap_severity, None)
    return _announce(after, tell), told


def _announce(state: CategoryState, tell: _Tell) -> CategoryState:
    """Tells the change between what was announced and what the rule says now."""
    target = state.severity if state.phase is Phase.RAISED else None
    if target == state.announced:
        return state
    if state.announced is None:
        tell(Kind.RAISED, target, None)
    elif target is None:
        tell(Kind.CLEARED, None, state.announced)
    else:
        tell(Kind.SEVERITY_CHANGED, target, state.announced)
    return replace(state, announced=target)


def health(state: DeviceEvaluation) -> DeviceHealth:
    """Healthy, degraded (something pending, or only warning/minor) or abnormal (a raised
    major/critical, a safety failure, a flapping major/critical, or communication lost)."""
    failing: list[Failing] = []
    for category in CATEGORY_ORDER:
        cat = state.category(category)
        if cat.flapping:
            failing.append(Failing(category, cat.flap_severity, "flapping"))
        elif cat.announced is not None:
            failing.append(Failing(category, cat.announced, "raised"))
        elif cat.phase is Phase.PENDING:
            failing.append(Failing(category, cat.severity, "pending"))
    if state.communication_lost or any(_abnormal(f.category, f) for f in failing):
        verdict = Health.ABNORMAL
    elif failing:
        verdict = Health.DEGRADED
    else:
        verdict = Health.HEALTHY
    return DeviceHealth(state.device_id, verdict, tuple(failing), state.communication_lost)


def judge(reading: Reading, rules: ModelRules) -> dict[Category, Severity]:
    """What one reading alone says per category (no pending period, no history): the
    categories it would raise, with their severity."""
    values = reading.values()
    found: dict[Category, Severity] = {}
    for category in CATEGORY_ORDER:
        severity = rules.categories[category].severity(values)
        if severity is not None:
            found[category] = severity
    return found


def is_abnormal_level(category: Category, severity: Severity | None) -> bool:
    """Whether a raised category makes a device abnormal (not merely degraded)."""
    return category is Category.SAFETY or (severity is not None and severity >= Severity.MAJOR)


def align(
    state: DeviceEvaluation | None, device_id: str, open_alarms: Mapping[Category, Severity]
) -> DeviceEvaluation:
    """The evaluator's state made to agree with the alarms the database holds open (after a
    restart, or when another writer changed them): an open alarm's category is raised at its
    severity; a category held abnormal here without an open alarm starts again from OK."""
    current = state or DeviceEvaluation(device_id)
    categories = dict(current.categories)
    for category in CATEGORY_ORDER:
        cat = current.category(category)
        held = cat.flap_severity if cat.flapping else cat.announced
        abnormal_here = (cat.flapping or cat.announced is not None) and is_abnormal_level(
            category, held
        )
        if category in open_alarms and not abnormal_here:
            severity = open_alarms[category]
            categories[category] = CategoryState(
                phase=Phase.RAISED,
                severity=severity,
                announced=severity,
                history=cat.history or (True,),
            )
        elif category not in open_alarms and abnormal_here:
            categories[category] = CategoryState(history=cat.history)
    return replace(current, categories=categories)


# --- replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleAt:
    reading: Reading
    at: datetime
    received_at: datetime | None = None


@dataclass(frozen=True)
class TickAt:
    at: datetime


def replay(
    rules: RuleSet,
    inputs: Iterable[SampleAt | TickAt],
    *,
    models: Mapping[str, str] | None = None,
) -> tuple[list[Transition], dict[str, DeviceEvaluation]]:
    """Runs samples and ticks, in the order given, through the evaluator from a blank state;
    the transitions in order and each device's final state. A tick applies to every device."""
    states: dict[str, DeviceEvaluation] = {}
    transitions: list[Transition] = []
    for item in inputs:
        if isinstance(item, TickAt):
            for device_id in sorted(states):
                step = tick(states[device_id], item.at, rules)
                states[device_id] = step.state
                transitions.extend(step.transitions)
        else:
            device_id = item.reading.device_id
            model = (models or {}).get(device_id)
            step = observe_sample(
                states.get(device_id),
                item.reading,
                item.at,
                rules,
                model=model,
                received_at=item.received_at,
            )
            states[device_id] = step.state
            transitions.extend(step.transitions)
    return transitions, states
