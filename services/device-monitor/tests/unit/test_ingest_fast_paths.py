"""The ingest's per-sample fast paths decide exactly what the paths they stand for decide:
``reading_usable`` is ``not reading_problems``, ``quiet_observer`` is ``observe_quiet``, and
the slot constructors build the values their dataclasses build. Checked on quiet and
non-quiet readings: every threshold of the rules at its value and just past it, each flag
false, NaN and infinities, sums that overflow, bad ids, late samples, open alarms, lost
communication, named and unknown models. No timing here (``make bench-devices`` measures)."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from orderline_device_monitor.domain import devices
from orderline_device_monitor.domain.evaluator import DeviceEvaluation, new_evaluation
from orderline_device_monitor.domain.health import (
    FLOAT_METRICS,
    Category,
    DeviceState,
    OpenAlarm,
    Reading,
    new_device_state,
    new_reading,
    reading_problems,
    reading_usable,
)
from orderline_device_monitor.domain.rules import RuleSet, load_rules, parse_rules

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

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

# The shipped rules, and rules with a `below` condition and a second model.
SHIPPED = load_rules()
OTHER = parse_rules(
    """
version: "fast-paths-1"
models:
  default:
    heartbeat_interval_s: 10
    categories:
      mechanical:
        conditions:
          - {metric: noise_db, above: {major: 70}, recover_at_or_below: 60}
          - {metric: vibration_mm_s, above: {minor: 4.5, critical: 9}}
      display:
        conditions: [{metric: display_ok, when_false: major}]
      input:
        conditions: [{metric: key_latency_ms, above: {major: 500}, recover_at_or_below: 400}]
      line:
        conditions:
          - {metric: line_up, when_false: critical}
          - {metric: line_error_rate, above: {major: 0.05}, recover_at_or_below: 0.02}
      resources:
        conditions:
          - {metric: cpu_pct, above: {minor: 90, major: 95}, recover_at_or_below: 85}
          - {metric: memory_pct, below: {warning: 5, major: 2}, recover_at_or_above: 10}
      thermal:
        conditions:
          - {metric: temperature_c, above: {warning: 70, critical: 85}, recover_at_or_below: 65}
      safety:
        conditions: [{metric: safety_ok, when_false: critical}]
  strict:
    categories:
      thermal:
        conditions:
          - {metric: temperature_c, above: {major: 50}, recover_at_or_below: 45}
  flappy:
    categories:
      display:
        pending_s: 2
        flapping: {low_pct: 10, high_pct: 30}
        conditions: [{metric: display_ok, when_false: major}]
""",
    "fast-paths.yaml",
)


def reading(device_id: str = "CPE-0001", at: datetime | None = T0, **values: Any) -> Reading:
    node = values.pop("access_node", "AN-01")
    model = values.pop("model", "")
    return Reading(device_id, at, **{**HEALTHY, **values}, access_node=node, model=model)


def boundary_values(rules: RuleSet) -> list[dict[str, Any]]:
    """Each threshold of every model at its value and one float past it, each flag false."""
    out: list[dict[str, Any]] = []
    for model in rules.models.values():
        for rule in model.categories.values():
            for condition in rule.conditions:
                if condition.kind == "flag":
                    out.append({condition.metric: False})
                    continue
                toward = math.inf if condition.kind == "above" else -math.inf
                for _severity, limit in condition.thresholds:
                    out.append({condition.metric: limit})
                    out.append({condition.metric: math.nextafter(limit, toward)})
                out.append({condition.metric: condition.recover})
    return out


ODD_VALUES: list[dict[str, Any]] = [
    {},
    *({name: math.nan} for name in FLOAT_METRICS),
    *({name: math.inf} for name in FLOAT_METRICS),
    *({name: -math.inf} for name in FLOAT_METRICS),
    {"noise_db": 1e308, "cpu_pct": 1e308},  # finite, but the sum overflows
    {"noise_db": -1e308, "cpu_pct": -1e308, "disk_pct": 1e308},
    {"memory_pct": -5.0},
    {"cpu_pct": 0.0, "temperature_c": -40.0},
]


# --- reading_usable --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", ODD_VALUES + boundary_values(SHIPPED), ids=lambda v: ",".join(map(str, v.items()))
)
def test_usable_is_no_problems_first_time_and_after(values: dict[str, Any]) -> None:
    valid_ids: set[str] = set()
    sample = reading(**values)
    expected = not reading_problems(sample)
    # The first reading of a device checks its ids; later ones find them known.
    assert reading_usable(sample, valid_ids) is expected
    assert reading_usable(sample, valid_ids) is expected
    assert reading_usable(reading(), valid_ids) is True
    assert reading_usable(sample, valid_ids) is expected


@pytest.mark.parametrize(
    ("device_id", "node"),
    [("", ""), ("CPE 0001", "AN-01"), ("CPE-0001", "AN 01"), ("x" * 65, ""), ("CPE-0001", "")],
)
def test_usable_refuses_bad_ids_every_time_and_remembers_only_good_ones(
    device_id: str, node: str
) -> None:
    valid_ids: set[str] = set()
    sample = reading(device_id, access_node=node)
    expected = not reading_problems(sample)
    for _ in range(2):
        assert reading_usable(sample, valid_ids) is expected
    assert valid_ids == ({device_id} | ({node} if node else set()) if expected else set())


def test_usable_takes_a_value_that_is_no_number_as_reading_problems_does() -> None:
    sample = reading(cpu_pct=None)
    valid_ids = {"CPE-0001", "AN-01"}
    assert reading_usable(sample, valid_ids) is (not reading_problems(sample))


def test_the_written_out_sum_covers_every_float_metric() -> None:
    floats = {f.name for f in fields(Reading) if f.type == "float"}
    assert set(FLOAT_METRICS) == floats
    valid_ids = {"CPE-0001", "AN-01"}
    for name in floats:
        assert reading_usable(reading(**{name: math.nan}), valid_ids) is False


# --- slot constructors -----------------------------------------------------------------------


def test_the_slot_constructors_build_what_the_dataclasses_build() -> None:
    sample = reading(model="m1")
    built = new_reading(*(getattr(sample, f.name) for f in fields(Reading)))
    assert built == sample and type(built) is Reading
    assert [getattr(built, f.name) for f in fields(Reading)] == [
        getattr(sample, f.name) for f in fields(Reading)
    ]
    evaluation = DeviceEvaluation("CPE-0001", "m1", {}, T0, T0, True)
    assert new_evaluation("CPE-0001", "m1", {}, T0, T0, True) == evaluation
    state = DeviceState("CPE-0001", {}, T0, T0, evaluation, True)
    assert new_device_state("CPE-0001", {}, T0, T0, evaluation, True) == state
    with pytest.raises(AttributeError):
        built.cpu_pct = 1.0  # type: ignore[misc]


# --- quiet_observer --------------------------------------------------------------------------


def states(rules: RuleSet) -> list[DeviceState | None]:
    """Devices in every kind of state the ingest meets."""
    ids = count(1)

    def new_id() -> str:
        return f"alarm-{next(ids)}"

    def run(*samples: tuple[int, dict[str, Any]], model: str | None = None) -> DeviceState:
        state: DeviceState | None = None
        for second, values in samples:
            at = T0 - timedelta(seconds=60 - second)
            state = devices.observe(
                state,
                reading(at=at, **values),
                received_at=at,
                new_alarm_id=new_id,
                rules=rules,
                model=model,
            ).state
        assert state is not None
        return state

    quiet = run(*((s, {}) for s in range(30)))
    return [
        None,
        DeviceState("CPE-0001"),  # restored, no evaluation yet
        run((0, {})),
        quiet,
        run(*((s, {}) for s in range(30)), model="strict"),
        run(*((s, {}) for s in range(30)), model="nope"),
        replace(quiet, under_maintenance=True),
        replace(quiet, last_observed=T0 + timedelta(seconds=5)),  # a later sample came first
        replace(quiet, evaluation=replace(quiet.evaluation, communication_lost=True)),
        replace(quiet, evaluation=replace(quiet.evaluation, categories={})),
        replace(quiet, open_alarms={Category.DISPLAY: OpenAlarm("a-1", T0)}),
        run((0, {}), (1, {"display_ok": False}), (2, {})),  # raised, recovering
        run((0, {}), (1, {"temperature_c": 60.0}), model="strict"),  # raised
        run((0, {}), (1, {"display_ok": False}), model="flappy"),  # pending
        run(*((s, {"display_ok": s % 2 == 0}) for s in range(30))),  # flapping
    ]


@pytest.mark.parametrize("rules", [SHIPPED, OTHER], ids=["shipped", "other"])
def test_quiet_observer_decides_what_observe_quiet_decides(rules: RuleSet) -> None:
    received = T0 + timedelta(seconds=1)
    observer = devices.quiet_observer(rules, received)
    times = [T0, None, received + timedelta(seconds=3), T0 - timedelta(seconds=30)]
    models: list[str | None] = [None, "", "default", "strict", "flappy", "nope"]
    compared = quiet_ones = 0
    for state in states(rules):
        for values in ODD_VALUES + boundary_values(rules):
            for at in times:
                for model in models:
                    sample = reading(at=at, **values)
                    expected = devices.observe_quiet(
                        state, sample, received_at=received, rules=rules, model=model
                    )
                    got = observer(state, sample, model)
                    assert got == expected, (state, values, at, model)
                    if expected is not None:
                        assert got is not None and got.evaluation is not None
                        assert expected.evaluation is not None
                        # The shared quiet mappings, not copies of them.
                        assert got.evaluation.categories is expected.evaluation.categories
                        quiet_ones += 1
                    compared += 1
    assert 0 < quiet_ones < compared


# --- compiled quiet tests --------------------------------------------------------------------


@pytest.mark.parametrize("rules", [SHIPPED, OTHER], ids=["shipped", "other"])
def test_the_compiled_quiet_tests_say_what_the_conditions_say(rules: RuleSet) -> None:
    tested = 0
    for model in rules.models.values():
        tests = [(model.quiet_test, [c for r in model.categories.values() for c in r.conditions])]
        tests += [(r.quiet_test, list(r.conditions)) for r in model.categories.values()]
        for test, conditions in tests:
            assert test is not None
            for values in ODD_VALUES + boundary_values(rules):
                sample = reading(**values)
                slow = all(c.severity(sample.values()) is None for c in conditions)
                assert test(sample) is slow, (model.model, values)
                tested += 1
    assert tested
