"""Telemetry: good samples stay in range; a fault pushes only its own category out of range."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orderline_simulators.fleet import domain, telemetry
from orderline_simulators.fleet.convert import sample_from_proto, sample_to_proto
from orderline_simulators.fleet.domain import HealthCategory
from orderline_simulators.fleet.telemetry import TelemetryGenerator, abnormal_categories

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DEVICES = [domain.device_id_for(i) for i in range(1, 51)]


def test_thresholds_are_the_documented_ones() -> None:
    assert telemetry.NOISE_DB_MAX == 70.0
    assert telemetry.VIBRATION_MM_S_MAX == 4.5
    assert telemetry.KEY_LATENCY_MS_MAX == 500.0
    assert telemetry.LINE_ERROR_RATE_MAX == 0.05
    assert telemetry.CPU_PCT_MAX == telemetry.MEMORY_PCT_MAX == telemetry.DISK_PCT_MAX == 95.0
    assert telemetry.TEMPERATURE_C_MAX == 75.0


def test_healthy_devices_stay_in_range() -> None:
    generator = TelemetryGenerator(seed=1)
    for _ in range(40):
        for device_id in DEVICES:
            sample = generator.sample(device_id, (), AT)
            assert abnormal_categories(sample) == frozenset(), sample
            assert 0 <= sample.cpu_pct <= 100
            assert sample.line_up and sample.display_ok and sample.safety_ok


def test_devices_differ_and_jitter() -> None:
    generator = TelemetryGenerator(seed=2)
    temps = {generator.sample(d, (), AT).temperature_c for d in DEVICES}
    assert len(temps) > 10
    again = {generator.sample("CPE-0001", (), AT).cpu_pct for _ in range(20)}
    assert len(again) > 1


@pytest.mark.parametrize("category", list(HealthCategory))
def test_a_fault_is_out_of_range_in_its_category_only(category: HealthCategory) -> None:
    generator = TelemetryGenerator(seed=3)
    for _ in range(200):
        sample = generator.sample("CPE-0042", {category}, AT)
        assert abnormal_categories(sample) == {category}, sample


@pytest.mark.parametrize(
    ("category", "check"),
    [
        (HealthCategory.MECHANICAL, lambda s: s.noise_db > 70 or s.vibration_mm_s > 4.5),
        (HealthCategory.DISPLAY, lambda s: not s.display_ok),
        (HealthCategory.INPUT, lambda s: s.key_latency_ms > 500),
        (HealthCategory.LINE, lambda s: not s.line_up or s.line_error_rate > 0.05),
        (
            HealthCategory.RESOURCES,
            lambda s: s.cpu_pct > 95 or s.memory_pct > 95 or s.disk_pct > 95,
        ),
        (HealthCategory.THERMAL, lambda s: s.temperature_c > 75),
        (HealthCategory.SAFETY, lambda s: not s.safety_ok),
    ],
)
def test_out_of_range_values_match_the_thresholds(category: HealthCategory, check: object) -> None:
    generator = TelemetryGenerator(seed=4)
    assert callable(check)
    for _ in range(100):
        assert check(generator.sample("CPE-0001", {category}, AT))


def test_several_faults_at_once() -> None:
    generator = TelemetryGenerator(seed=5)
    faults = {HealthCategory.THERMAL, HealthCategory.LINE, HealthCategory.DISPLAY}
    for _ in range(50):
        assert abnormal_categories(generator.sample("CPE-0001", faults, AT)) == faults


def test_thresholds_are_strict() -> None:
    sample = TelemetryGenerator(seed=6).sample("CPE-0001", (), AT)
    at_limit = replace(
        sample,
        noise_db=70.0,
        vibration_mm_s=4.5,
        key_latency_ms=500.0,
        line_error_rate=0.05,
        cpu_pct=95.0,
        memory_pct=95.0,
        disk_pct=95.0,
        temperature_c=75.0,
    )
    assert abnormal_categories(at_limit) == frozenset()
    assert abnormal_categories(replace(at_limit, temperature_c=75.1)) == {HealthCategory.THERMAL}


def test_measurements_are_the_fields_the_test_looks_at() -> None:
    sample = TelemetryGenerator(seed=7).sample("CPE-0001", {HealthCategory.THERMAL}, AT)
    env = telemetry.measurements_for(domain.TestKind.ENVIRONMENTAL, sample)
    assert set(env) == {"noise_db", "vibration_mm_s", "temperature_c"}
    assert env["temperature_c"] > telemetry.TEMPERATURE_C_MAX
    ui = telemetry.measurements_for(domain.TestKind.USER_INTERFACE, sample)
    assert ui == {"display_ok": 1.0, "key_latency_ms": sample.key_latency_ms}


def test_proto_round_trip() -> None:
    sample = TelemetryGenerator(seed=8).sample("CPE-0009", {HealthCategory.LINE}, AT)
    assert sample_from_proto(sample_to_proto(sample)) == sample


def test_samples_name_the_device_model_on_the_wire() -> None:
    generator = TelemetryGenerator(seed=9)
    sample = generator.sample("CPE-0001", (), AT, model="HG8245H5 ONT")
    message = sample_to_proto(sample)
    assert message.device_model == "HG8245H5 ONT"
    assert sample_from_proto(message) == sample
    # Not said: empty on the wire (device-monitor then uses its default rules).
    assert sample_to_proto(generator.sample("CPE-0002", (), AT)).device_model == ""
