"""The alarm evaluator, pure: pending periods, hysteresis, keep-firing, Nagios flap detection,
heartbeat loss on a tick, health levels, and reproducibility."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderline_device_monitor.domain.evaluator import (
    DeviceEvaluation,
    Health,
    Kind,
    SampleAt,
    TickAt,
    Transition,
    health,
    observe_sample,
    percent_state_change,
    replay,
    tick,
)
from orderline_device_monitor.domain.health import Category, Reading, Severity
from orderline_device_monitor.domain.rules import RuleSet, load_rules, parse_rules

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
DEVICE = "CPE-0001"

# Every category debounced for 2 s and kept firing for 3 s after recovery, with a band between
# the raise threshold and the recovery one.
RULES = parse_rules(
    """
version: "test-7"
models:
  default:
    heartbeat_interval_s: 10
    categories:
      mechanical:
        pending_s: 2
        keep_firing_s: 3
        conditions: [{metric: noise_db, above: {major: 70}, recover_at_or_below: 60}]
      display:
        pending_s: 2
        keep_firing_s: 3
        conditions: [{metric: display_ok, when_false: major}]
      input:
        pending_s: 2
        keep_firing_s: 3
        conditions: [{metric: key_latency_ms, above: {major: 500}, recover_at_or_below: 400}]
      line:
        pending_s: 2
        keep_firing_s: 3
        conditions:
          - {metric: line_up, when_false: critical}
          - {metric: line_error_rate, above: {major: 0.05}, recover_at_or_below: 0.02}
      resources:
        pending_s: 2
        keep_firing_s: 3
        conditions: [{metric: cpu_pct, above: {minor: 90, major: 95}, recover_at_or_below: 85}]
      thermal:
        pending_s: 2
        keep_firing_s: 3
        conditions:
          - {metric: temperature_c, above: {warning: 70, major: 75, critical: 85},
             recover_at_or_below: 65}
      safety:
        pending_s: 2
        keep_firing_s: 3
        conditions: [{metric: safety_ok, when_false: critical}]
  instant:
    categories:
      thermal:
        flapping: {low_pct: 5, high_pct: 20}
        conditions: [{metric: temperature_c, above: {major: 75}}]
      display:
        flapping: {low_pct: 10, high_pct: 30}
        conditions: [{metric: display_ok, when_false: major}]
""",
    "test-rules.yaml",
)

HEALTHY: dict[str, Any] = {
    "noise_db": 35.0,
    "vibration_mm_s": 0.8,
    "display_ok": True,
    "key_latency_ms": 60.0,
    "line_error_rate": 0.0005,
    "line_up": True,
    "cpu_pct": 20.0,
    "memory_pct": 45.0,
    "disk_pct": 40.0,
    "temperature_c": 48.0,
    "safety_ok": True,
}

# Per category: a reading past the raise threshold, one in the hysteresis band (neither raising
# nor recovering; None for flags, which have no band), and the recovery.
CASES: dict[Category, tuple[dict[str, Any], dict[str, Any] | None]] = {
    Category.MECHANICAL: ({"noise_db": 80.0}, {"noise_db": 65.0}),
    Category.DISPLAY: ({"display_ok": False}, None),
    Category.INPUT: ({"key_latency_ms": 900.0}, {"key_latency_ms": 450.0}),
    Category.LINE: ({"line_error_rate": 0.2}, {"line_error_rate": 0.03}),
    Category.RESOURCES: ({"cpu_pct": 99.0}, {"cpu_pct": 88.0}),
    Category.THERMAL: ({"temperature_c": 80.0}, {"temperature_c": 68.0}),
    Category.SAFETY: ({"safety_ok": False}, None),
}


def reading(device_id: str = DEVICE, **values: Any) -> Reading:
    return Reading(device_id=device_id, observed_at=None, **{**HEALTHY, **values})


class Run:
    """Feeds one device's samples at offsets in seconds from T0 and keeps what was told."""

    def __init__(self, rules: RuleSet = RULES, model: str | None = None) -> None:
        self.rules = rules
        self.model = model
        self.state: DeviceEvaluation | None = None
        self.told: list[Transition] = []

    def at(self, seconds: float, **values: Any) -> list[Transition]:
        step = observe_sample(
            self.state,
            reading(**values),
            T0 + timedelta(seconds=seconds),
            self.rules,
            model=self.model,
        )
        self.state = step.state
        self.told.extend(step.transitions)
        return list(step.transitions)

    def tick(self, seconds: float) -> list[Transition]:
        assert self.state is not None
        step = tick(self.state, T0 + timedelta(seconds=seconds), self.rules)
        self.state = step.state
        self.told.extend(step.transitions)
        return list(step.transitions)

    def verdict(self) -> Health:
        assert self.state is not None
        return health(self.state).health

    def now(self) -> DeviceEvaluation:
        assert self.state is not None
        return self.state


def kinds(transitions: Sequence[Transition]) -> list[tuple[Kind, Category | None]]:
    return [(t.kind, t.category) for t in transitions]


# --- pending, hysteresis, keep-firing: every category ------------------------------------------


@pytest.mark.parametrize("category", list(CASES))
def test_a_category_is_raised_only_after_its_pending_period(category: Category) -> None:
    bad, _ = CASES[category]
    run = Run()
    assert run.at(0, **bad) == []
    assert run.verdict() is Health.DEGRADED  # pending
    assert run.at(1, **bad) == []
    (raised,) = run.at(2, **bad)
    assert (raised.kind, raised.category) == (Kind.RAISED, category)
    assert raised.sample_at == T0 + timedelta(seconds=2)
    assert raised.rules_version == "test-7"
    assert raised.severity is not None and raised.severity >= Severity.MAJOR
    assert run.verdict() is Health.ABNORMAL
    assert health(run.now()).abnormal_categories == (category,)


@pytest.mark.parametrize("category", list(CASES))
def test_a_good_sample_during_the_pending_period_starts_it_again(category: Category) -> None:
    bad, _ = CASES[category]
    run = Run()
    run.at(0, **bad)
    run.at(1)
    assert run.verdict() is Health.HEALTHY
    assert run.at(2, **bad) == []
    assert run.at(3.5, **bad) == []
    assert kinds(run.at(4, **bad)) == [(Kind.RAISED, category)]


@pytest.mark.parametrize("category", [c for c, (_, band) in CASES.items() if band is not None])
def test_a_raised_category_stays_raised_between_its_raise_and_recovery_thresholds(
    category: Category,
) -> None:
    bad, band = CASES[category]
    assert band is not None
    run = Run()
    for second in (0, 1, 2):
        run.at(second, **bad)
    for second in range(3, 60, 5):
        assert run.at(second, **band) == []
    assert run.verdict() is Health.ABNORMAL
    # A band reading never raises a category that is not raised.
    quiet = Run()
    for second in range(0, 30, 5):
        assert quiet.at(second, **band) == []
    assert quiet.verdict() is Health.HEALTHY


@pytest.mark.parametrize("category", list(CASES))
def test_a_recovered_category_keeps_firing_for_its_keep_firing_time(category: Category) -> None:
    bad, _ = CASES[category]
    run = Run()
    for second in (0, 1, 2):
        run.at(second, **bad)
    assert run.at(10) == []
    assert run.at(12) == []
    (cleared,) = run.at(13)
    assert (cleared.kind, cleared.category) == (Kind.CLEARED, category)
    assert cleared.sample_at == T0 + timedelta(seconds=13)
    assert run.verdict() is Health.HEALTHY


@pytest.mark.parametrize("category", list(CASES))
def test_a_fault_returning_while_keeping_firing_neither_clears_nor_raises_again(
    category: Category,
) -> None:
    bad, _ = CASES[category]
    run = Run()
    # Long enough runs of one state that the changes stay under the flapping threshold.
    for second in range(10):
        run.at(second, **bad)
    run.at(10)
    for second in range(12, 21):
        assert run.at(second, **bad) == []
    assert run.at(22) == []  # the keep-firing time starts again from here
    assert run.at(24) == []
    assert kinds(run.at(25)) == [(Kind.CLEARED, category)]


def test_the_worst_matching_severity_wins_and_changes_are_told() -> None:
    run = Run()
    run.at(0, temperature_c=80.0)
    (raised,) = run.at(2, temperature_c=80.0)
    assert raised.severity is Severity.MAJOR
    (changed,) = run.at(3, temperature_c=90.0)
    assert (changed.kind, changed.severity, changed.previous_severity) == (
        Kind.SEVERITY_CHANGED,
        Severity.CRITICAL,
        Severity.MAJOR,
    )
    assert changed.detail == "temperature_c 90 > 85"
    assert changed.readings == {"temperature_c": 90.0}


def test_a_raised_severity_falls_only_with_the_recovery() -> None:
    run = Run()
    for second in (0, 1, 2):
        run.at(second, temperature_c=90.0)
    # 72 matches only "warning", but the episode is not over until the recovery at 65.
    for second in range(3, 20):
        assert run.at(second, temperature_c=72.0) == []
    assert run.verdict() is Health.ABNORMAL
    for second in range(20, 23):
        run.at(second, temperature_c=60.0)
    assert kinds(run.at(23, temperature_c=60.0)) == [(Kind.CLEARED, Category.THERMAL)]


def test_warning_and_minor_alone_leave_a_device_degraded_not_abnormal() -> None:
    run = Run()
    for second in (0, 1, 2):
        run.at(second, temperature_c=72.0, cpu_pct=92.0)
    assert {(t.category, t.severity) for t in run.told} == {
        (Category.THERMAL, Severity.WARNING),
        (Category.RESOURCES, Severity.MINOR),
    }
    assert run.verdict() is Health.DEGRADED
    assert health(run.now()).abnormal_categories == ()


def test_a_sample_older_than_the_last_is_ignored() -> None:
    run = Run()
    run.at(5)
    step = observe_sample(run.state, reading(safety_ok=False), T0, RULES)
    assert step.out_of_order and step.transitions == () and step.state == run.state


def test_a_model_without_rules_of_its_own_gets_the_default() -> None:
    run = Run(model="unknown model")
    run.at(0, safety_ok=False)
    assert kinds(run.at(2, safety_ok=False)) == [(Kind.RAISED, Category.SAFETY)]


def test_the_shipped_rules_hold_a_safety_fault_on_its_first_sample() -> None:
    run = Run(load_rules())
    assert kinds(run.at(0, safety_ok=False)) == [(Kind.RAISED, Category.SAFETY)]
    assert run.verdict() is Health.ABNORMAL


# --- flapping -----------------------------------------------------------------------------------


def test_percent_state_change_is_nagios_weighted() -> None:
    # 21 states, 20 possible changes; change x (1 = oldest) weighs 0.75 + (x - 1) * 0.5 / 19.
    steady = [False] * 21
    assert percent_state_change(steady) == 0.0
    newest = [False] * 20 + [True]
    assert percent_state_change(newest) == pytest.approx(1.25 * 100 / 20)  # 6.25 %
    oldest = [False] + [True] * 20
    assert percent_state_change(oldest) == pytest.approx(0.75 * 100 / 20)  # 3.75 %
    # The four newest changes: (1.25 + 1.2236842 + 1.1973684 + 1.1710526) / 20 = 24.21 %.
    four = [False] * 17 + [True, False, True, False]
    assert percent_state_change(four) == pytest.approx(24.2105263)
    three = [False] * 18 + [True, False, True]
    assert percent_state_change(three) == pytest.approx(18.3552632)
    # A young history is padded with its first state: no invented changes.
    assert percent_state_change([True, True]) == 0.0
    assert percent_state_change([False, True]) == percent_state_change(newest)


def test_flapping_starts_at_the_high_threshold_instead_of_another_transition() -> None:
    run = Run(model="instant")
    assert kinds(run.at(0, temperature_c=80.0)) == [(Kind.RAISED, Category.THERMAL)]  # 6.25 %
    assert kinds(run.at(1)) == [(Kind.CLEARED, Category.THERMAL)]  # 12.4 %
    assert kinds(run.at(2, temperature_c=80.0)) == [(Kind.RAISED, Category.THERMAL)]  # 18.4 %
    (started,) = run.at(3)  # 24.2 % >= 20 %: flapping, not "cleared"
    assert (started.kind, started.category, started.severity) == (
        Kind.FLAPPING_STARTED,
        Category.THERMAL,
        Severity.MAJOR,
    )
    assert run.verdict() is Health.ABNORMAL
    # While flapping, the state goes on changing and nothing more is told.
    for second in range(4, 10):
        assert run.at(second, temperature_c=80.0 if second % 2 else 48.0) == []
    (failing,) = health(run.now()).failing
    assert failing.status == "flapping"


def test_flapping_ends_below_the_low_threshold_and_settles_to_the_current_state() -> None:
    run = Run(model="instant")
    for second in range(4):
        run.at(second, temperature_c=80.0 if second % 2 == 0 else 48.0)
    history = [False] * 17 + [True, False, True, False]
    second = 4
    while True:
        history = [*history[1:], False]
        told = run.at(second)
        if percent_state_change(history) < 5.0:
            break
        assert told == [], f"still flapping at {percent_state_change(history):.2f} %"
        second += 1
    # The alarm raised before the flapping is cleared once the flapping ends on a good state.
    assert kinds(told) == [
        (Kind.FLAPPING_ENDED, Category.THERMAL),
        (Kind.CLEARED, Category.THERMAL),
    ]
    assert run.verdict() is Health.HEALTHY


def test_flapping_thresholds_are_per_rule() -> None:
    run = Run(model="instant")
    for second in range(4):
        run.at(second, display_ok=second % 2 == 1)
    # 24.2 % is flapping for thermal's 20 % but not for display's 30 %.
    assert kinds(run.told)[-1] == (Kind.CLEARED, Category.DISPLAY)
    told = run.at(4, display_ok=False)  # five changes: 29.9 %
    assert kinds(told) == [(Kind.RAISED, Category.DISPLAY)]
    assert kinds(run.at(5)) == [(Kind.FLAPPING_STARTED, Category.DISPLAY)]  # 35.5 %


# --- heartbeat ----------------------------------------------------------------------------------


def test_communication_is_lost_on_the_first_tick_past_the_models_interval() -> None:
    run = Run()
    run.at(0)
    assert run.tick(10) == []
    (lost,) = run.tick(10.5)
    assert (lost.kind, lost.at, lost.sample_at) == (
        Kind.COMMUNICATION_LOST,
        T0 + timedelta(seconds=10.5),
        T0,
    )
    assert run.tick(30) == []  # told once
    assert run.verdict() is Health.ABNORMAL
    assert health(run.now()).communication_lost
    assert kinds(run.at(31)) == [(Kind.COMMUNICATION_RESTORED, None)]
    assert run.verdict() is Health.HEALTHY


def test_a_device_whose_clock_runs_behind_is_not_lost_while_it_keeps_sending() -> None:
    state: DeviceEvaluation | None = None
    for second in range(0, 60, 5):
        arrived = T0 + timedelta(seconds=second)
        behind = arrived - timedelta(seconds=30)
        state = observe_sample(state, reading(), behind, RULES, received_at=arrived).state
        assert tick(state, arrived + timedelta(seconds=1), RULES).transitions == ()
    assert state is not None
    (lost,) = tick(state, T0 + timedelta(seconds=66), RULES).transitions
    assert (lost.kind, lost.sample_at) == (Kind.COMMUNICATION_LOST, T0 + timedelta(seconds=25))


def test_a_models_own_heartbeat_interval_applies() -> None:
    rules = load_rules()
    run = Run(rules, model="B860AV2.1 IPTV STB")
    run.at(0)
    assert run.tick(14) == []
    assert kinds(run.tick(16)) == [(Kind.COMMUNICATION_LOST, None)]


# --- reproducibility and properties -------------------------------------------------------------


def _recording(seed: int) -> list[SampleAt | TickAt]:
    """A fleet of five devices for ten minutes: faults that come, go and flap, silences."""
    rng = random.Random(seed)
    items: list[SampleAt | TickAt] = []
    faulty: dict[str, set[Category]] = {f"CPE-{i:04d}": set() for i in range(1, 6)}
    for second in range(600):
        at = T0 + timedelta(seconds=second)
        for device_id, faults in faulty.items():
            if rng.random() < 0.03:
                faults ^= {rng.choice(list(CASES))}
            if device_id == "CPE-0005" and 200 <= second < 260:
                continue  # silent for a minute
            values: dict[str, Any] = {}
            for category in faults:
                values.update(CASES[category][0])
            items.append(SampleAt(reading(device_id, **values), at))
        items.append(TickAt(at + timedelta(milliseconds=500)))
    return items


def test_replaying_the_same_samples_and_ticks_gives_the_same_transitions() -> None:
    recording = _recording(seed=11)
    first, first_states = replay(RULES, recording)
    second, second_states = replay(RULES, list(recording))
    assert first == second
    assert first_states == second_states
    assert {t.kind for t in first} >= {Kind.RAISED, Kind.CLEARED, Kind.COMMUNICATION_LOST}
    assert all(t.rules_version == "test-7" for t in first)
    # Against other rules the same samples give other decisions, and say so.
    bumped = replace(RULES, version="test-8")
    assert {t.rules_version for t in replay(bumped, recording)[0]} == {"test-8"}


_value = st.fixed_dictionaries(
    {
        "noise_db": st.floats(0, 120),
        "display_ok": st.booleans(),
        "key_latency_ms": st.floats(0, 3000),
        "line_up": st.booleans(),
        "line_error_rate": st.floats(0, 1),
        "cpu_pct": st.floats(0, 100),
        "temperature_c": st.floats(0, 100),
        "safety_ok": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 30), _value), max_size=60),
    st.sampled_from([None, "instant"]),
)
def test_no_sequence_clears_or_changes_severity_without_a_raise_before(
    steps: list[tuple[float, dict[str, Any]]], model: str | None
) -> None:
    run = Run(model=model)
    offset = 0.0
    for gap, values in steps:
        offset += gap
        run.at(offset, **values)
    raised: dict[Category | None, bool] = {}
    for t in run.told:
        if t.kind is Kind.RAISED:
            assert not raised.get(t.category), "raised twice without a clear"
            raised[t.category] = True
        elif t.kind in (Kind.CLEARED, Kind.SEVERITY_CHANGED):
            assert raised.get(t.category), f"{t.kind} without a raise before"
            if t.kind is Kind.CLEARED:
                raised[t.category] = False


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 3600),
            st.fixed_dictionaries(
                {
                    "noise_db": st.floats(15, 60),
                    "vibration_mm_s": st.floats(0, 3),
                    "key_latency_ms": st.floats(5, 300),
                    "line_error_rate": st.floats(0, 0.005),
                    "cpu_pct": st.floats(1, 80),
                    "memory_pct": st.floats(5, 80),
                    "disk_pct": st.floats(1, 85),
                    "temperature_c": st.floats(20, 65),
                }
            ),
        ),
        max_size=80,
    )
)
def test_a_healthy_stream_never_raises_under_the_shipped_rules(
    steps: list[tuple[float, dict[str, Any]]],
) -> None:
    # The simulator's healthy ranges (simulators/README.md), at any pace.
    run = Run(load_rules())
    offset = 0.0
    for gap, values in steps:
        offset += gap
        assert run.at(offset, **values) == []
    if steps:
        assert run.verdict() is Health.HEALTHY
