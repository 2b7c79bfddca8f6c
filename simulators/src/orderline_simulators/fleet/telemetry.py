"""Realistic telemetry per device, and the thresholds that tell good from abnormal.

A healthy device reports values inside the good band, with a per-device baseline and a little
jitter. A fault pushes the values of its own category, and only those, past the threshold, so
that evaluating a sample with :func:`abnormal_categories` gives back exactly the injected
faults. device-monitor applies the same thresholds (see simulators/README.md).

A value is abnormal when it is strictly above its maximum (``>``); a flag is abnormal when false.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from orderline_simulators.fleet.domain import FAILED_TESTS, HealthCategory, TestKind

# --- thresholds (abnormal when the value is above the maximum) -------------------------------
NOISE_DB_MAX = 70.0
"""Mechanical: acoustic noise next to the device, dB(A)."""
VIBRATION_MM_S_MAX = 4.5
"""Mechanical: vibration velocity, mm/s RMS (ISO 10816 'unsatisfactory' for small machines)."""
KEY_LATENCY_MS_MAX = 500.0
"""Input: time from key press to response, ms."""
LINE_ERROR_RATE_MAX = 0.05
"""Line: share of errored frames/packets (0..1). ``line_up`` false is abnormal too."""
CPU_PCT_MAX = 95.0
"""Resources: CPU use, %."""
MEMORY_PCT_MAX = 95.0
"""Resources: memory use, %."""
DISK_PCT_MAX = 95.0
"""Resources: storage use, %."""
TEMPERATURE_C_MAX = 75.0
"""Thermal: internal temperature, °C."""
# Display: ``display_ok`` false is abnormal. Safety: ``safety_ok`` false is abnormal.


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of one device (mirrors orderline.device.v1.TelemetrySample)."""

    device_id: str
    observed_at: datetime
    noise_db: float
    vibration_mm_s: float
    display_ok: bool
    key_latency_ms: float
    line_error_rate: float
    line_up: bool
    cpu_pct: float
    memory_pct: float
    disk_pct: float
    temperature_c: float
    safety_ok: bool
    # The device's model (e.g. "HG8245H5 ONT"), so device-monitor judges it by that model's
    # rules; empty when not said.
    model: str = ""


# The sample fields that tell each category's state.
CATEGORY_FIELDS: Mapping[HealthCategory, tuple[str, ...]] = {
    HealthCategory.MECHANICAL: ("noise_db", "vibration_mm_s"),
    HealthCategory.DISPLAY: ("display_ok",),
    HealthCategory.INPUT: ("key_latency_ms",),
    HealthCategory.LINE: ("line_up", "line_error_rate"),
    HealthCategory.RESOURCES: ("cpu_pct", "memory_pct", "disk_pct"),
    HealthCategory.THERMAL: ("temperature_c",),
    HealthCategory.SAFETY: ("safety_ok",),
}


def abnormal_categories(sample: TelemetrySample) -> frozenset[HealthCategory]:
    """The reference evaluation: which categories the sample shows as abnormal."""
    found: set[HealthCategory] = set()
    if sample.noise_db > NOISE_DB_MAX or sample.vibration_mm_s > VIBRATION_MM_S_MAX:
        found.add(HealthCategory.MECHANICAL)
    if not sample.display_ok:
        found.add(HealthCategory.DISPLAY)
    if sample.key_latency_ms > KEY_LATENCY_MS_MAX:
        found.add(HealthCategory.INPUT)
    if not sample.line_up or sample.line_error_rate > LINE_ERROR_RATE_MAX:
        found.add(HealthCategory.LINE)
    if (
        sample.cpu_pct > CPU_PCT_MAX
        or sample.memory_pct > MEMORY_PCT_MAX
        or sample.disk_pct > DISK_PCT_MAX
    ):
        found.add(HealthCategory.RESOURCES)
    if sample.temperature_c > TEMPERATURE_C_MAX:
        found.add(HealthCategory.THERMAL)
    if not sample.safety_ok:
        found.add(HealthCategory.SAFETY)
    return frozenset(found)


def measurements_for(kind: TestKind, sample: TelemetrySample) -> dict[str, float]:
    """What a test of ``kind`` measures: the fields of the categories that can fail it."""
    values: dict[str, float] = {}
    for category in HealthCategory:
        if kind in FAILED_TESTS[category]:
            for name in CATEGORY_FIELDS[category]:
                values[name] = float(getattr(sample, name))
    return values


@dataclass(frozen=True)
class _Baseline:
    noise_db: float
    vibration_mm_s: float
    key_latency_ms: float
    line_error_rate: float
    cpu_pct: float
    memory_pct: float
    disk_pct: float
    temperature_c: float


def baseline(device_id: str) -> _Baseline:
    """The device's stable normal operating point (no jitter)."""
    return _baseline(device_id)


def _baseline(device_id: str) -> _Baseline:
    """Each device has its own, stable, normal operating point."""
    rng = random.Random(f"baseline:{device_id}")
    return _Baseline(
        noise_db=rng.uniform(24.0, 40.0),
        vibration_mm_s=rng.uniform(0.1, 1.2),
        key_latency_ms=rng.uniform(25.0, 120.0),
        line_error_rate=rng.uniform(0.00001, 0.001),
        cpu_pct=rng.uniform(5.0, 35.0),
        memory_pct=rng.uniform(30.0, 60.0),
        disk_pct=rng.uniform(15.0, 70.0),
        temperature_c=rng.uniform(36.0, 55.0),
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class TelemetryGenerator:
    """Produces samples; ``seed`` makes the jitter reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._baselines: dict[str, _Baseline] = {}

    def _base(self, device_id: str) -> _Baseline:
        base = self._baselines.get(device_id)
        if base is None:
            base = self._baselines[device_id] = _baseline(device_id)
        return base

    def _jitter(self, center: float, sigma: float, low: float, high: float) -> float:
        return _clamp(self._rng.gauss(center, sigma), low, high)

    def sample(
        self,
        device_id: str,
        faults: Collection[HealthCategory],
        at: datetime,
        *,
        model: str = "",
    ) -> TelemetrySample:
        rng = self._rng
        base = self._base(device_id)
        # Normal readings: inside the good band with a safe margin below each maximum.
        noise = self._jitter(base.noise_db, 1.5, 15.0, NOISE_DB_MAX - 10.0)
        vibration = self._jitter(base.vibration_mm_s, 0.15, 0.0, VIBRATION_MM_S_MAX - 1.5)
        key_latency = self._jitter(base.key_latency_ms, 10.0, 5.0, KEY_LATENCY_MS_MAX - 200.0)
        error_rate = self._jitter(base.line_error_rate, 0.0002, 0.0, LINE_ERROR_RATE_MAX / 10)
        cpu = self._jitter(base.cpu_pct, 6.0, 1.0, CPU_PCT_MAX - 15.0)
        memory = self._jitter(base.memory_pct, 2.0, 5.0, MEMORY_PCT_MAX - 15.0)
        disk = self._jitter(base.disk_pct, 0.2, 1.0, DISK_PCT_MAX - 10.0)
        temperature = self._jitter(base.temperature_c, 0.8, 20.0, TEMPERATURE_C_MAX - 10.0)
        display_ok = line_up = safety_ok = True

        # Faults: only the fields of the faulty category leave the good band.
        if HealthCategory.MECHANICAL in faults:
            mode = rng.choice(("noise", "vibration", "both"))
            if mode in ("noise", "both"):
                noise = rng.uniform(NOISE_DB_MAX + 2.0, 95.0)
            if mode in ("vibration", "both"):
                vibration = rng.uniform(VIBRATION_MM_S_MAX + 1.5, 20.0)
        if HealthCategory.DISPLAY in faults:
            display_ok = False
        if HealthCategory.INPUT in faults:
            key_latency = rng.uniform(KEY_LATENCY_MS_MAX + 150.0, 3000.0)
        if HealthCategory.LINE in faults:
            if rng.random() < 0.5:
                line_up, error_rate = False, 1.0  # interruption: nothing gets through
            else:
                error_rate = rng.uniform(LINE_ERROR_RATE_MAX + 0.01, 0.35)  # interference
        if HealthCategory.RESOURCES in faults:
            starved = [name for name in ("cpu", "memory", "disk") if rng.random() < 0.5]
            for name in starved or [rng.choice(("cpu", "memory", "disk"))]:
                value = rng.uniform(96.0, 100.0)
                if name == "cpu":
                    cpu = value
                elif name == "memory":
                    memory = value
                else:
                    disk = value
        if HealthCategory.THERMAL in faults:
            temperature = rng.uniform(TEMPERATURE_C_MAX + 2.0, 92.0)
        if HealthCategory.SAFETY in faults:
            safety_ok = False

        return TelemetrySample(
            device_id=device_id,
            observed_at=at,
            noise_db=round(noise, 1),
            vibration_mm_s=round(vibration, 2),
            display_ok=display_ok,
            key_latency_ms=round(key_latency, 1),
            line_error_rate=round(error_rate, 5),
            line_up=line_up,
            cpu_pct=round(cpu, 1),
            memory_pct=round(memory, 1),
            disk_pct=round(disk, 1),
            temperature_c=round(temperature, 1),
            safety_ok=safety_ok,
            model=model,
        )
