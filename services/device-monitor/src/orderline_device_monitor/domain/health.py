"""Device health, pure: the categories, readings, each device's open alarms, the changes
told, and the answers (health, fitness).

Which readings make a category abnormal, and when, is the alarm evaluator's (``evaluator.py``,
with the rules in ``rules.py``); ``devices.py`` turns its decisions into alarms. An alarm is
open for a category while the evaluator holds it at abnormal level (raised major or critical,
any safety failure, or flapping at that level); it stays open, and the device abnormal, however
old the last reading is.

Readings are ordered by the time the device observed them, capped at the time they were
received (a device clock running ahead cannot lock out later readings); a reading older than
the last one evaluated for the device is ignored.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderline_device_monitor.domain.evaluator import DeviceEvaluation, Transition


class Category(enum.Enum):
    """The seven kinds of abnormal device state (orderline.device.v1.HealthCategory)."""

    MECHANICAL = "mechanical"
    DISPLAY = "display"
    INPUT = "input"
    LINE = "line"
    RESOURCES = "resources"
    THERMAL = "thermal"
    SAFETY = "safety"


CATEGORY_ORDER: tuple[Category, ...] = tuple(Category)


def sorted_categories(categories: frozenset[Category] | set[Category]) -> tuple[Category, ...]:
    return tuple(c for c in CATEGORY_ORDER if c in categories)


class Severity(enum.IntEnum):
    """TMF642 perceived severity; a larger value is worse."""

    WARNING = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class HealthState(enum.Enum):
    GOOD = "good"
    ABNORMAL = "abnormal"
    UNKNOWN = "unknown"


NO_RECENT_TELEMETRY = "NO_RECENT_TELEMETRY"
"""Fitness reason: no reading within the staleness limit."""


def abnormal_reason(category: Category) -> str:
    """Fitness reason for an abnormal category, e.g. ABNORMAL_THERMAL."""
    return f"ABNORMAL_{category.name}"


# --- device ids --------------------------------------------------------------------------------

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def device_id_problem(device_id: str) -> str | None:
    """Why a device id is not acceptable, or None when it is (e.g. CPE-0001)."""
    if not device_id:
        return "required"
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        return (
            "must be 1-64 characters: letters, digits and . _ : - (starting with a letter or digit)"
        )
    return None


# --- readings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One telemetry sample of one device (orderline.device.v1.TelemetrySample)."""

    device_id: str
    observed_at: datetime | None
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

    def values(self) -> dict[str, float | bool]:
        """Every measured value by field name (no id, no time)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("device_id", "observed_at")
        }


def reading_problems(reading: Reading) -> list[tuple[str, str]]:
    """(field, description) for each value that makes the reading unusable."""
    problems: list[tuple[str, str]] = []
    problem = device_id_problem(reading.device_id)
    if problem:
        problems.append(("device_id", problem))
    for name, value in reading.values().items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((name, "must be a finite number"))
    return problems


@dataclass(frozen=True)
class Finding:
    """A category a reading shows as abnormal, with the readings that say so."""

    category: Category
    readings: Mapping[str, float | bool]
    detail: str
    severity: Severity = Severity.MAJOR


# --- state and changes -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAlarm:
    alarm_id: str
    raised_at: datetime
    severity: Severity = Severity.MAJOR


@dataclass(frozen=True)
class DeviceState:
    """What device-monitor holds in memory per device."""

    device_id: str
    open_alarms: Mapping[Category, OpenAlarm] = field(default_factory=dict)
    # Server time the last evaluated reading arrived (freshness is judged on our clock).
    last_seen: datetime | None = None
    # Device time of the last evaluated reading (capped at its arrival), to order readings.
    last_observed: datetime | None = None
    # The alarm evaluator's state (pending periods, hysteresis, flapping, heartbeat); None
    # until the first reading since the process started.
    evaluation: DeviceEvaluation | None = None

    @property
    def abnormal(self) -> frozenset[Category]:
        return frozenset(self.open_alarms)

    def first_open_alarm(self) -> OpenAlarm | None:
        if not self.open_alarms:
            return None
        return min(self.open_alarms.values(), key=lambda a: (a.raised_at, a.alarm_id))


@dataclass(frozen=True)
class RaisedAlarm:
    alarm_id: str
    finding: Finding


@dataclass(frozen=True)
class ClearedAlarm:
    category: Category
    alarm: OpenAlarm


@dataclass(frozen=True)
class HealthChange:
    """A device turned abnormal in some categories and/or recovered in others."""

    device_id: str
    at: datetime
    raised: tuple[RaisedAlarm, ...]
    cleared: tuple[ClearedAlarm, ...]
    abnormal_after: frozenset[Category]
    reading: Reading
    # Every decision of the evaluator behind this change (also those that open or close no
    # alarm: pending ended in a warning, severity changed, flapping).
    transitions: tuple[Transition, ...] = ()
    # Open alarms whose severity changed: (alarm, new severity).
    severity_changes: tuple[tuple[OpenAlarm, Severity], ...] = ()

    @property
    def health_changed(self) -> bool:
        return bool(self.raised or self.cleared)


@dataclass(frozen=True)
class Observation:
    state: DeviceState
    change: HealthChange | None
    # The reading was older than the last one evaluated: ignored, state unchanged.
    out_of_order: bool = False


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthView:
    device_id: str
    state: HealthState
    abnormal: tuple[Category, ...]
    last_seen: datetime | None
    open_alarm_id: str
    stale: bool


@dataclass(frozen=True)
class Fitness:
    fit: bool
    health: HealthView
    reasons: tuple[str, ...]
    alarm_id: str


def fitness(view: HealthView) -> Fitness:
    """Fit to be worked on only when GOOD; otherwise every reason why not."""
    reasons = [abnormal_reason(c) for c in view.abnormal]
    if view.stale:
        reasons.append(NO_RECENT_TELEMETRY)
    fit = view.state is HealthState.GOOD
    return Fitness(
        fit=fit, health=view, reasons=() if fit else tuple(reasons), alarm_id=view.open_alarm_id
    )
