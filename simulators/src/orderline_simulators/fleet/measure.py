"""What a device test measures, from the configuration in force, the health faults and the
defects: pure, and deterministic per device (the telemetry sample supplies the fields a health
fault pushes out of range; the rest comes from the device's stable baseline).

The physics, in short:

- functional: ``service_up`` needs ``service.enabled = true``, the line up and no duplex
  mismatch (``wan.port_mode = 1000-full`` fixes one); ``line_up`` falls with a line fault.
- performance: ``throughput_mbps`` against ``qos.downstream_mbps`` (1000 when unset) as
  ``throughput_ratio``, ``latency_ms``, ``loss_pct``. ``line.profile = robust`` trades about 7 %
  of throughput and 2 ms for error protection: a marginal line (``line_noise``) then passes; a
  damaged line does not. Starved resources add latency.
- security: ``default_credentials`` (1 unless ``management.default_credentials = disabled``),
  ``open_management_ports`` (WAN access not ``closed``, telnet left open by the firmware
  unless ``management.telnet = disabled``, a backdoor with starved resources),
  ``firmware_signature_ok``, ``protection_ok`` (0 with a safety fault).
- environmental: ``temperature_load_c``: the idle temperature plus the heat of full load
  (10 °C; 4 with ``fan.speed = high``; 3 less with ``power.mode = eco``); clogged vents add
  25 °C, or 8 with the fan on high. A broken sensor reports -273 °C.
- user interface: ``display_ok``, ``key_latency_ms`` (800 ms with slow menus unless
  ``ui.animations = off``).
"""

from __future__ import annotations

import random

from orderline_simulators.fleet.domain import Device, HealthCategory, TestKind
from orderline_simulators.fleet.telemetry import TelemetrySample, baseline, measurements_for

LINE_CAPACITY_MBPS = 1000.0


def _quality(device_id: str) -> tuple[float, float, float]:
    """The device's line at its best: throughput ratio, latency (ms), loss (%)."""
    rng = random.Random(f"line:{device_id}")
    return rng.uniform(0.94, 0.99), rng.uniform(2.0, 6.0), rng.uniform(0.01, 0.1)


def measure(device: Device, kind: TestKind, sample: TelemetrySample) -> dict[str, float]:
    values = measurements_for(kind, sample)
    settings = device.settings
    faults = device.faults
    defects = device.defects
    line_up = HealthCategory.LINE not in faults

    if kind is TestKind.FUNCTIONAL:
        duplex_ok = "duplex_mismatch" not in defects or settings.get("wan.port_mode") == "1000-full"
        up = settings.get("service.enabled") == "true" and line_up and duplex_ok
        values["service_up"] = 1.0 if up else 0.0
        values["line_up"] = 1.0 if line_up else 0.0
    elif kind is TestKind.PERFORMANCE:
        ratio, latency, loss = _quality(device.device_id)
        if settings.get("line.profile") == "robust":
            ratio *= 0.93
            latency += 2.0
            if "line_noise" in defects:
                loss = max(loss, 0.2)
        elif "line_noise" in defects:
            ratio, loss = 0.6, 3.0
        if "line_damaged" in defects:
            ratio, loss = 0.4, 8.0
        if HealthCategory.RESOURCES in faults:
            latency += 80.0
        if not line_up:
            ratio, loss = 0.0, 100.0
        try:
            rate = float(settings.get("qos.downstream_mbps") or LINE_CAPACITY_MBPS)
        except ValueError:
            rate = LINE_CAPACITY_MBPS
        ratio = round(ratio, 3)
        values["throughput_mbps"] = round(rate * ratio, 1)
        values["throughput_ratio"] = ratio
        values["latency_ms"] = round(latency, 1)
        values["loss_pct"] = round(loss, 3)
    elif kind is TestKind.SECURITY:
        ports = 0
        if settings.get("management.wan_access") != "closed":
            ports += 1
        if "telnet_open" in defects and settings.get("management.telnet") != "disabled":
            ports += 1
        if HealthCategory.RESOURCES in faults:
            ports += 1
        factory = settings.get("management.default_credentials") != "disabled"
        values["default_credentials"] = 1.0 if factory else 0.0
        values["open_management_ports"] = float(ports)
        values["firmware_signature_ok"] = 0.0 if "unsigned_firmware" in defects else 1.0
        values["protection_ok"] = 0.0 if HealthCategory.SAFETY in faults else 1.0
    elif kind is TestKind.ENVIRONMENTAL:
        fan_high = settings.get("fan.speed") == "high"
        heat = 4.0 if fan_high else 10.0
        if settings.get("power.mode") == "eco":
            heat -= 3.0
        if "cooling_degraded" in defects:
            heat += 8.0 if fan_high else 25.0
        idle = (
            sample.temperature_c
            if HealthCategory.THERMAL in faults
            else baseline(device.device_id).temperature_c
        )
        values["temperature_load_c"] = round(idle + heat, 1)
        if "sensor_glitch" in defects:
            values["temperature_load_c"] = -273.0
    elif kind is TestKind.USER_INTERFACE:
        values["display_ok"] = 1.0 if sample.display_ok else 0.0
        if "ui_sluggish" in defects and settings.get("ui.animations") != "off":
            values["key_latency_ms"] = max(values["key_latency_ms"], 800.0)
    return values
