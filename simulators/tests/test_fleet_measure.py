"""Test measurements follow the configuration, the health faults and the defects, so that a
configuration change can fix some failures and not others (pure: no process)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderline_simulators.common.errors import FailedPrecondition
from orderline_simulators.fleet import domain
from orderline_simulators.fleet.domain import DEFECTS, HealthCategory, TestKind
from orderline_simulators.fleet.measure import measure
from orderline_simulators.fleet.telemetry import TelemetryGenerator

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# What provisioning's base configuration sets (catalogue config_base), in short.
CONFIGURED = {
    "service.enabled": "true",
    "management.default_credentials": "disabled",
    "management.wan_access": "closed",
    "qos.downstream_mbps": "300",
    "line.profile": "standard",
}


def configured(device_id: str = "CPE-0001") -> domain.Device:
    device = domain.Device(device_id, "HG8245H5 ONT", "V5R020C10S115")
    device.apply_config("configure", CONFIGURED)
    return device


def run(device: domain.Device, kind: TestKind) -> tuple[bool, dict[str, float]]:
    sample = TelemetryGenerator(seed=7).sample(device.device_id, device.faults, T0)
    outcome = device.run_test(kind, f"t-{kind.value}")
    return outcome.passed, measure(device, kind, sample)


@pytest.mark.parametrize("device_id", [domain.device_id_for(i) for i in range(1, 30)])
def test_a_configured_healthy_device_measures_well_inside_the_usual_limits(
    device_id: str,
) -> None:
    device = configured(device_id)
    for kind in TestKind:
        passed, values = run(device, kind)
        assert passed, kind
    values = run(device, TestKind.PERFORMANCE)[1]
    assert values["throughput_ratio"] >= 0.94 and values["latency_ms"] <= 6
    assert values["loss_pct"] <= 0.1
    assert values["throughput_mbps"] == pytest.approx(300 * values["throughput_ratio"], abs=0.1)
    assert run(device, TestKind.ENVIRONMENTAL)[1]["temperature_load_c"] <= 65
    security = run(device, TestKind.SECURITY)[1]
    assert security["default_credentials"] == 0 and security["open_management_ports"] == 0


def test_a_factory_device_has_no_service_and_its_default_credentials() -> None:
    device = domain.Device("CPE-0001", "HG8245H5 ONT", "V5R020C10S115")
    assert run(device, TestKind.FUNCTIONAL)[1]["service_up"] == 0
    security = run(device, TestKind.SECURITY)[1]
    assert security["default_credentials"] == 1 and security["open_management_ports"] == 1


@pytest.mark.parametrize(
    ("defect", "kind", "measurement", "bad", "good"),
    [
        ("duplex_mismatch", TestKind.FUNCTIONAL, "service_up", 0.0, 1.0),
        ("telnet_open", TestKind.SECURITY, "open_management_ports", 1.0, 0.0),
        ("ui_sluggish", TestKind.USER_INTERFACE, "key_latency_ms", 800.0, None),
    ],
)
def test_a_fixable_defect_shows_until_its_remedy_is_applied(
    defect: str, kind: TestKind, measurement: str, bad: float, good: float | None
) -> None:
    device = configured()
    device.inject_defect(defect)
    passed, values = run(device, kind)
    assert not passed and values[measurement] == bad
    device.apply_config("adjust", DEFECTS[defect].remedy)
    passed, values = run(device, kind)
    assert passed
    if good is not None:
        assert values[measurement] == good
    else:
        assert values[measurement] < bad


def test_a_marginal_line_loses_packets_until_the_robust_profile() -> None:
    device = configured()
    device.inject_defect("line_noise")
    passed, values = run(device, TestKind.PERFORMANCE)
    assert not passed and values["loss_pct"] == 3.0 and values["throughput_ratio"] == 0.6
    device.apply_config("adjust", {"line.profile": "robust"})
    passed, values = run(device, TestKind.PERFORMANCE)
    assert passed and values["loss_pct"] <= 0.2 and values["throughput_ratio"] >= 0.87


def test_a_damaged_line_fails_whatever_the_profile() -> None:
    device = configured()
    device.inject_defect("line_damaged")
    device.apply_config("adjust", {"line.profile": "robust"})
    passed, values = run(device, TestKind.PERFORMANCE)
    assert not passed and values["loss_pct"] == 8.0


def test_clogged_vents_run_hot_until_the_fan_is_on_high() -> None:
    device = configured()
    device.inject_defect("cooling_degraded")
    passed, values = run(device, TestKind.ENVIRONMENTAL)
    assert not passed and values["temperature_load_c"] > 70
    device.apply_config("adjust", {"fan.speed": "high"})
    passed, values = run(device, TestKind.ENVIRONMENTAL)
    assert passed and values["temperature_load_c"] <= 67


def test_an_overheating_device_stays_hot_with_the_fan_on_high() -> None:
    device = configured()
    device.inject_fault(HealthCategory.THERMAL)
    device.apply_config("adjust", {"fan.speed": "high", "power.mode": "eco"})
    passed, values = run(device, TestKind.ENVIRONMENTAL)
    assert not passed and values["temperature_load_c"] > 75


def test_a_broken_sensor_passes_on_the_device_but_reports_an_impossible_temperature() -> None:
    device = configured()
    device.inject_defect("sensor_glitch")
    passed, values = run(device, TestKind.ENVIRONMENTAL)
    assert passed and values["temperature_load_c"] == -273.0


def test_unsigned_firmware_and_failed_protection_fail_security() -> None:
    device = configured()
    device.inject_defect("unsigned_firmware")
    device.inject_fault(HealthCategory.SAFETY)
    passed, values = run(device, TestKind.SECURITY)
    assert not passed
    assert values["firmware_signature_ok"] == 0 and values["protection_ok"] == 0


def test_activation_is_idempotent_and_needs_a_configuration() -> None:
    device = domain.Device("CPE-0001", "HG8245H5 ONT", "V5R020C10S115")
    with pytest.raises(FailedPrecondition):
        device.activate_service("a0")
    device.apply_config("c1", CONFIGURED)
    first = device.activate_service("a1", "ORD-1")
    assert first.service_active and not first.replayed and first.config_version == 2
    again = device.activate_service("a1", "ORD-1")
    assert again.replayed and again.activation_id == first.activation_id
    assert device.counters().applies_by_key["a1"] == 1
    off = device.deactivate_service("d1")
    assert not off.service_active and not device.service_active
    with pytest.raises(FailedPrecondition):
        device.activate_service("d1")  # a key belongs to one operation


def test_apply_reports_the_version_it_replaced_on_every_replay() -> None:
    device = configured()
    result = device.apply_config("k2", {"a": "b"})
    assert (result.config_version, result.previous_version) == (3, 2)
    device.apply_config("k3", {"c": "d"})
    replay = device.apply_config("k2", {"a": "b"})
    assert replay.replayed and replay.previous_version == 2


def test_defects_parse_in_fault_specs() -> None:
    specs = domain.parse_fault_specs("CPE-0001:thermal,CPE-0002:cooling_degraded")
    assert specs[0].category is HealthCategory.THERMAL and not specs[0].defect
    assert specs[1].category is None and specs[1].defect == "cooling_degraded"
    with pytest.raises(ValueError, match="defect"):
        domain.parse_fault_specs("CPE-0001:gremlins")
