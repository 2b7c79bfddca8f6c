"""The evaluator's shortcuts (a healthy sample of a healthy device takes shared quiet states;
a category a sample does not touch skips its step) decide exactly what the full steps decide:
the same recording through rules with the shortcuts and through the same rules without them
(every compiled quiet test withdrawn) gives equal transitions, states and changes."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from orderline_device_monitor.domain import devices
from orderline_device_monitor.domain.evaluator import (
    SampleAt,
    TickAt,
    observe_sample,
    replay,
)
from orderline_device_monitor.domain.health import DeviceState, Observation, Reading
from orderline_device_monitor.domain.rules import (
    CategoryRule,
    ModelRules,
    RuleSet,
    load_rules,
    parse_rules,
)

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

RULES = parse_rules(
    """
version: "shortcuts-1"
models:
  default:
    heartbeat_interval_s: 10
    categories:
      mechanical:
        pending_s: 2
        keep_firing_s: 3
        conditions:
          - {metric: noise_db, above: {major: 70}, recover_at_or_below: 60}
          - {metric: vibration_mm_s, above: {minor: 4.5, critical: 9}}
      display:
        conditions: [{metric: display_ok, when_false: major}]
      input:
        pending_s: 1
        conditions: [{metric: key_latency_ms, above: {major: 500}, recover_at_or_below: 400}]
      line:
        pending_s: 2
        keep_firing_s: 3
        conditions:
          - {metric: line_up, when_false: critical}
          - {metric: line_error_rate, above: {major: 0.05}, recover_at_or_below: 0.02}
      resources:
        keep_firing_s: 2
        conditions:
          - {metric: cpu_pct, above: {minor: 90, major: 95}, recover_at_or_below: 85}
          - {metric: memory_pct, below: {warning: 5}, recover_at_or_above: 10}
      thermal:
        flapping: {low_pct: 5, high_pct: 20}
        conditions:
          - {metric: temperature_c, above: {warning: 70, major: 75, critical: 85},
             recover_at_or_below: 65}
      safety:
        conditions: [{metric: safety_ok, when_false: critical}]
  flappy:
    categories:
      display:
        flapping: {low_pct: 10, high_pct: 30}
        conditions: [{metric: display_ok, when_false: major}]
""",
    "shortcuts.yaml",
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

# Faults, values in the hysteresis bands and at the thresholds themselves.
FAULTS: list[dict[str, Any]] = [
    {"noise_db": 80.0},
    {"noise_db": 65.0},
    {"noise_db": 70.0},
    {"vibration_mm_s": 5.0},
    {"vibration_mm_s": 12.0},
    {"display_ok": False},
    {"key_latency_ms": 900.0},
    {"key_latency_ms": 450.0},
    {"line_up": False},
    {"line_error_rate": 0.2},
    {"line_error_rate": 0.03},
    {"cpu_pct": 92.0},
    {"cpu_pct": 99.0},
    {"memory_pct": 3.0},
    {"memory_pct": 7.0},
    {"temperature_c": 72.0},
    {"temperature_c": 90.0},
    {"temperature_c": 68.0},
    {"safety_ok": False},
]


def without_shortcuts(rules: RuleSet) -> RuleSet:
    """The same rules with every compiled quiet test withdrawn: the evaluator takes every step
    of every category for every sample, as it did before the shortcuts."""
    models: dict[str, ModelRules] = {}
    for name, model in rules.models.items():
        categories: dict[Any, CategoryRule] = {}
        for category, rule in model.categories.items():
            copy = replace(rule)
            object.__setattr__(copy, "quiet_test", None)
            categories[category] = copy
        slow = replace(model, categories=categories)
        object.__setattr__(slow, "quiet_test", None)
        models[name] = slow
    return replace(rules, models=models)


def recording(seed: int, fleet: int = 8, seconds: int = 300) -> list[SampleAt | TickAt]:
    """Devices that stay healthy for long stretches, fail, recover, flap, fall silent, and send
    a sample late now and then."""
    rng = random.Random(seed)
    items: list[SampleAt | TickAt] = []
    faults: dict[str, dict[str, Any]] = {f"CPE-{i:04d}": {} for i in range(1, fleet + 1)}
    # Two devices whose very first sample is a fault.
    faults["CPE-0001"].update(noise_db=80.0)
    faults["CPE-0002"].update(display_ok=False)
    for second in range(seconds):
        at = T0 + timedelta(seconds=second)
        for device_id, values in faults.items():
            if rng.random() < 0.04:
                values.clear()
                if rng.random() < 0.6:
                    for _ in range(rng.randint(1, 2)):
                        values.update(rng.choice(FAULTS))
            if device_id == "CPE-0003" and 100 <= second < 130:
                continue  # silent: communication lost, then restored
            flap = device_id == "CPE-0004" and 150 <= second < 170 and second % 2 == 0
            sample = {**HEALTHY, **values, **({"temperature_c": 80.0} if flap else {})}
            observed = at - timedelta(seconds=2) if rng.random() < 0.02 else at
            items.append(SampleAt(Reading(device_id, observed, **sample), observed, at))
        items.append(TickAt(at + timedelta(milliseconds=500)))
    return items


@pytest.mark.parametrize("rules", [RULES, load_rules()], ids=["test-rules", "shipped-rules"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replaying_with_and_without_the_shortcuts_gives_the_same(rules: RuleSet, seed: int) -> None:
    items = recording(seed)
    models = {"CPE-0002": "flappy", "CPE-0004": "flappy"}
    fast, fast_states = replay(rules, items, models=models)
    slow, slow_states = replay(without_shortcuts(rules), items, models=models)
    assert fast == slow
    assert fast_states == slow_states
    assert len(fast) > 20  # the recording does make the evaluator decide things


def test_a_state_from_before_its_model_was_known_evaluates_alike() -> None:
    reading = Reading("CPE-0001", T0, **HEALTHY)
    first = observe_sample(None, reading, T0, RULES).state
    later = T0 + timedelta(seconds=1)
    bad = Reading("CPE-0001", later, **{**HEALTHY, "display_ok": False})
    for sample in (reading, bad):
        fast = observe_sample(first, sample, later, RULES, model="flappy")
        slow = observe_sample(first, sample, later, without_shortcuts(RULES), model="flappy")
        assert fast == slow


@pytest.mark.parametrize("seed", [4, 5])
def test_devices_observe_with_and_without_the_shortcuts_gives_the_same(seed: int) -> None:
    """Through the alarms too: the same observations (states and changes) and heartbeats."""

    def run(rules: RuleSet) -> list[Any]:
        ids = count(1)
        states: dict[str, DeviceState] = {}
        seen: list[Any] = []
        for item in recording(seed, fleet=6, seconds=200):
            if isinstance(item, TickAt):
                for device_id in sorted(states):
                    after, change = devices.heartbeat(
                        states[device_id], item.at, rules, new_alarm_id=lambda: f"A{next(ids)}"
                    )
                    states[device_id] = after
                    seen.append((after, change))
                continue
            assert item.received_at is not None
            observation: Observation = devices.observe(
                states.get(item.reading.device_id),
                item.reading,
                received_at=item.received_at,
                new_alarm_id=lambda: f"A{next(ids)}",
                rules=rules,
            )
            states[item.reading.device_id] = observation.state
            seen.append(observation)
        return seen

    fast = run(RULES)
    slow = run(without_shortcuts(RULES))
    assert fast == slow
    assert sum(1 for o in fast if isinstance(o, Observation) and o.change is not None) > 10
