"""device-monitor and the fleet simulator must tell good from abnormal the same way: the same
limits, and the same categories for every generated reading, faulty or not (by the shipped
rules' default model, taking one reading alone; pending periods only delay the verdict)."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

import pytest

from orderline_device_monitor.domain import thresholds as limits
from orderline_device_monitor.domain.evaluator import is_abnormal_level, judge
from orderline_device_monitor.domain.health import Category, Reading
from orderline_device_monitor.domain.rules import load_rules

fleet_telemetry: Any = pytest.importorskip("orderline_simulators.fleet.telemetry")
fleet_domain: Any = pytest.importorskip("orderline_simulators.fleet.domain")

LIMITS = [
    "NOISE_DB_MAX",
    "VIBRATION_MM_S_MAX",
    "KEY_LATENCY_MS_MAX",
    "LINE_ERROR_RATE_MAX",
    "CPU_PCT_MAX",
    "MEMORY_PCT_MAX",
    "DISK_PCT_MAX",
    "TEMPERATURE_C_MAX",
]


@pytest.mark.parametrize("name", LIMITS)
def test_limits_are_the_fleets(name: str) -> None:
    assert getattr(limits, name) == getattr(fleet_telemetry, name)


DEFAULT = load_rules().for_model(None)


def abnormal_categories(reading: Reading) -> set[Category]:
    return {c for c, s in judge(reading, DEFAULT).items() if is_abnormal_level(c, s)}


READING_FIELDS = {f.name for f in fields(Reading)}


def _as_reading(sample: Any) -> Reading:
    # The sample also names the device's model, which selects the rules, not a reading's value.
    return Reading(**{k: v for k, v in asdict(sample).items() if k in READING_FIELDS})


def _ours(category: Any) -> Category:
    return Category(category.value)


def test_every_generated_reading_is_judged_as_the_fleet_judges_it() -> None:
    generator = fleet_telemetry.TelemetryGenerator(seed=7)
    at = datetime(2026, 11, 25, tzinfo=UTC)
    fault_sets: list[set[Any]] = [set()] + [{c} for c in fleet_domain.HealthCategory]
    fault_sets.append(set(fleet_domain.HealthCategory))
    for faults in fault_sets:
        for index in range(1, 41):
            sample = generator.sample(f"CPE-{index:04d}", faults, at)
            expected = {_ours(c) for c in fleet_telemetry.abnormal_categories(sample)}
            assert abnormal_categories(_as_reading(sample)) == expected
            assert expected == {_ours(c) for c in faults}
