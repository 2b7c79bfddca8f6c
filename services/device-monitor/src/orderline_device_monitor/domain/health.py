"""Device health, pure: evaluate a telemetry reading, track each device's open alarms, and tell
only the changes.

A device is abnormal in a category from the first reading past that category's limit until the
first reading back inside it (no debounce: one reading decides, both ways). Each category that
turns abnormal opens one alarm; the alarm stays open, and the device abnormal, until a reading
clears it, however old the last reading is. A device with no open alarm is GOOD while its
telemetry is recent and UNKNOWN once it is older than the staleness limit.

Readings are ordered by the time the device observed them, capped at the time they were
received (a device clock running ahead cannot lock out later readings); a reading older than
the last one evaluated for the device is ignored.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from orderline_device_monitor.domain import thresholds as limits


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


def _above(values: dict[str, float | bool], name: str, maximum: float) -> tuple[str, str] | None:
    value = values[name]
    if float(value) > maximum:
        return name, f"{name} {value:g} > {maximum:g}"
    return None


def _false(values: dict[str, float | bool], name: str) -> tuple[str, str] | None:
    return (name, f"{name} false") if not values[name] else None


# The checks of each category, in the order they are reported.
_CHECKS: Mapping[
    Category, tuple[Callable[[dict[str, float | bool]], tuple[str, str] | None], ...]
] = {
    Category.MECHANICAL: (
        lambda v: _above(v, "noise_db", limits.NOISE_DB_MAX),
        lambda v: _above(v, "vibration_mm_s", limits.VIBRATION_MM_S_MAX),
    ),
    Category.DISPLAY: (lambda v: _false(v, "display_ok"),),
    Category.INPUT: (lambda v: _above(v, "key_latency_ms", limits.KEY_LATENCY_MS_MAX),),
    Category.LINE: (
        lambda v: _false(v, "line_up"),
        lambda v: _above(v, "line_error_rate", limits.LINE_ERROR_RATE_MAX),
    ),
    Category.RESOURCES: (
        lambda v: _above(v, "cpu_pct", limits.CPU_PCT_MAX),
        lambda v: _above(v, "memory_pct", limits.MEMORY_PCT_MAX),
        lambda v: _above(v, "disk_pct", limits.DISK_PCT_MAX),
    ),
    Category.THERMAL: (lambda v: _above(v, "temperature_c", limits.TEMPERATURE_C_MAX),),
    Category.SAFETY: (lambda v: _false(v, "safety_ok"),),
}


def evaluate(reading: Reading) -> dict[Category, Finding]:
    """The categories a reading shows as abnormal, each with its offending readings."""
    values = reading.values()
    found: dict[Category, Finding] = {}
    for category, checks in _CHECKS.items():
        hits = [hit for check in checks if (hit := check(values)) is not None]
        if hits:
            found[category] = Finding(
                category=category,
                readings={name: values[name] for name, _ in hits},
                detail="; ".join(text for _, text in hits),
            )
    return found


def abnormal_categories(reading: Reading) -> frozenset[Category]:
    return frozenset(evaluate(reading))


# --- state and changes -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAlarm:
    alarm_id: str
    raised_at: datetime


@dataclass(frozen=True)
class DeviceState:
    """What device-monitor holds in memory per device."""

    device_id: str
    open_alarms: Mapping[Category, OpenAlarm] = field(default_factory=dict)
    # Server time the last evaluated reading arrived (freshness is judged on our clock).
    last_seen: datetime | None = None
    # Device time of the last evaluated reading (capped at its arrival), to order readings.
    last_observed: datetime | None = None

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


@dataclass(frozen=True)
class Observation:
    state: DeviceState
    change: HealthChange | None
    # The reading was older than the last one evaluated: ignored, state unchanged.
    out_of_order: bool = False


def observe(
    state: DeviceState | None,
    reading: Reading,
    *,
    received_at: datetime,
    new_alarm_id: Callable[[], str],
) -> Observation:
    """Evaluates one reading against the device's state: the next state and the change, if any.

    Steady state (same abnormal set as before) gives no change; only transitions do.
    """
    current = state or DeviceState(reading.device_id)
    at = min(reading.observed_at or received_at, received_at)
    if current.last_observed is not None and at < current.last_observed:
        return Observation(current, None, out_of_order=True)
    found = evaluate(reading)
    raised = tuple(
        RaisedAlarm(new_alarm_id(), found[c])
        for c in CATEGORY_ORDER
        if c in found and c not in current.open_alarms
    )
    cleared = tuple(
        ClearedAlarm(c, current.open_alarms[c])
        for c in CATEGORY_ORDER
        if c in current.open_alarms and c not in found
    )
    open_alarms = {c: a for c, a in current.open_alarms.items() if c in found}
    for r in raised:
        open_alarms[r.finding.category] = OpenAlarm(r.alarm_id, at)
    next_state = replace(current, open_alarms=open_alarms, last_seen=received_at, last_observed=at)
    if not raised and not cleared:
        return Observation(next_state, None)
    change = HealthChange(
        device_id=reading.device_id,
        at=at,
        raised=raised,
        cleared=cleared,
        abnormal_after=frozenset(open_alarms),
        reading=reading,
    )
    return Observation(next_state, change)


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthView:
    device_id: str
    state: HealthState
    abnormal: tuple[Category, ...]
    last_seen: datetime | None
    open_alarm_id: str
    stale: bool


def health_of(state: DeviceState, *, now: datetime, stale_after: timedelta) -> HealthView:
    """ABNORMAL while an alarm is open; otherwise GOOD with recent telemetry, else UNKNOWN."""
    stale = state.last_seen is None or now - state.last_seen > stale_after
    first = state.first_open_alarm()
    if first is not None:
        health = HealthState.ABNORMAL
    elif stale:
        health = HealthState.UNKNOWN
    else:
        health = HealthState.GOOD
    return HealthView(
        device_id=state.device_id,
        state=health,
        abnormal=sorted_categories(state.abnormal),
        last_seen=state.last_seen,
        open_alarm_id=first.alarm_id if first else "",
        stale=stale,
    )


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
