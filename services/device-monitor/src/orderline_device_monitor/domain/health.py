# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from math import isfinite
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from orderline_device_monitor.domain.condition import Condition

if TYPE_CHECKING:
    from orderline_device_monitor.domain.alarms import Correlated
    from orderline_device_monitor.domain.evaluator import DeviceEvaluation, Failing, Transition


class Category(enum.Enum):
    """The seven kinds of abnormal device state (orderline.device.v1.HealthCategory)."""

    MECHANICAL = "mechanical"
    DISPLAY = "display"
    INPUT = "input"
    LINE = "line"
    RESOURCES = "resources"
    THERMAL = "thermal"
    SAFETY = "safety"
    # Not a rule category: the alarm of a device whose heartbeat is lost (a device-level root).
    COMMUNICATION = "communication"


# The seven categories the rules judge, in the order answers list them.
CATEGORY_ORDER: tuple[Category, ...] = tuple(c for c in Category if c is not Category.COMMUNICATION)
# Every alarm category: the seven, then communication.
ALARM_CATEGORIES: tuple[Category, ...] = (*CATEGORY_ORDER, Category.COMMUNICATION)


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

UNDER_MAINTENANCE = "UNDER_MAINTENANCE"
"""Fitness reason: a person works on the device."""


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


@dataclass(frozen=True, slots=True)
class Reading:
    """One telemetry sample of one device (orderline.device.v1.TelemetrySample).

    Slotted: no dictionary per reading, and ``new_reading`` can fill the slots directly."""

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
    # The access node the device's line hangs off, as its telemetry says; empty: not said.
    access_node: str = ""
    # The device's model, as its telemetry says: it selects the model's rules. Empty: not said
    # (the rules' default model, or the model the device named before).
    model: str = ""

    def values(self) -> dict[str, float | bool]:
        """Every measured value by field name (no id, no time, no access node, no model)."""
        return {name: getattr(self, name) for name in _METRIC_FIELDS}


def slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setter of each field of a frozen, slotted dataclass, in field order: a
    constructor for a hot path fills the slots with them directly (the dataclass's
    ``__init__`` goes through ``object.__setattr__`` once per field, about twice as slow)."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


_READING_SLOTS = slot_setters(Reading)


def new_reading(
    device_id: str,
    observed_at: datetime | None,
    noise_db: float,
    vibration_mm_s: float,
    display_ok: bool,
    key_latency_ms: float,
    line_error_rate: float,
    line_up: bool,
    cpu_pct: float,
    memory_pct: float,
    disk_pct: float,
    temperature_c: float,
    safety_ok: bool,
    access_node: str,
    model: str,
    _new: Callable[[type[Reading]], Reading] = object.__new__,
    _set: tuple[Callable[[Any, Any], None], ...] = _READING_SLOTS,
) -> Reading:
    """``Reading(...)`` with every field given in order, built in about half the time (for the
    ingest, one per sample): the frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, this sets its slot directly. Equal to the ``Reading`` built the
    usual way (test_health_evaluation checks it)."""
    reading = _new(Reading)
    _set[0](reading, device_id)
    _set[1](reading, observed_at)
    _set[2](reading, noise_db)
    _set[3](reading, vibration_mm_s)
    _set[4](reading, display_ok)
    _set[5](reading, key_latency_ms)
    _set[6](reading, line_error_rate)
    _set[7](reading, line_up)
    _set[8](reading, cpu_pct)
    _set[9](reading, memory_pct)
    _set[10](reading, disk_pct)
    _set[11](reading, temperature_c)
    _set[12](reading, safety_ok)
    _set[13](reading, access_node)
    _set[14](reading, model)
    return reading


NOT_METRICS = frozenset({"device_id", "observed_at", "access_node", "model"})
"""The fields of a Reading that are not measurements."""
# Looked up once: `dataclasses.fields()` on every reading cost more than reading the values.
_METRIC_FIELDS = tuple(f.name for f in fields(Reading) if f.name not in NOT_METRICS)


def reading_problems(reading: Reading) -> list[tuple[str, str]]:
    """(field, description) for each value that makes the reading unusable."""
    problems: list[tuple[str, str]] = []
    problem = device_id_problem(reading.device_id)
    if problem:
        problems.append(("device_id", problem))
    if reading.access_node:
        node_problem = device_id_problem(reading.access_node)
        if node_problem:
            problems.append(("access_node_id", node_problem))
    if _finite(reading):
        return problems
    for name, value in reading.values().items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((name, "must be a finite number"))
    return problems


_metric_values = attrgetter(*_METRIC_FIELDS)


# The float metrics, for ``reading_usable``'s one sum (the flags are bools, always finite).
FLOAT_METRICS = tuple(f.name for f in fields(Reading) if f.type == "float")


def reading_usable(reading: Reading, valid_ids: set[str]) -> bool:
    """Exactly ``not reading_problems(reading)``, told cheaply for a device heard before.

    ``valid_ids`` holds the ids (devices' and access nodes') already found acceptable; an id not
    in it is checked against the pattern once and added when acceptable, so a fleet's ids are
    matched once per id, not twice per sample. The float metrics are proven finite by one sum
    written out (a NaN or an infinity makes it non-finite; so does a sum that overflows, or a
    value that is no number: those readings take ``reading_problems``, which looks at each)."""
    device_id, node = reading.device_id, reading.access_node
    if device_id not in valid_ids or (node and node not in valid_ids):
        if reading_problems(reading):
            return False
        valid_ids.add(device_id)
        if node:
            valid_ids.add(node)
        return True
    try:
        # Every name in FLOAT_METRICS (test_health_evaluation checks the two agree).
        total = (
            reading.noise_db
            + reading.vibration_mm_s
            + reading.key_latency_ms
            + reading.line_error_rate
            + reading.cpu_pct
            + reading.memory_pct
            + reading.disk_pct
            + reading.temperature_c
        )
    except TypeError:
        return not reading_problems(reading)
    return isfinite(total) or not reading_problems(reading)


def _finite(reading: Reading) -> bool:
    """Every metric finite, told at once: a NaN or an infinity makes the sum non-finite (so a
    finite sum proves them all finite); a sum that overflows, or values that do not add up, are
    looked at one by one."""
    try:
        return math.isfinite(sum(_metric_values(reading)))
    except (TypeError, OverflowError):
        return False


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
    # The device's root alarm this one is a child of (domain/alarms.py), if any.
    parent_id: str | None = None
    # How often the fault came back while this alarm stood.
    repeat_count: int = 0
    # The open access-node alarm this (line) alarm is a child of (domain/site.py), if any. Its
    # parent is that alarm unless a root of the device itself is open (it comes first).
    site_parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What device-monitor holds in memory per device (slotted: ``new_device_state``)."""

    device_id: str
    open_alarms: Mapping[Category, OpenAlarm] = field(default_factory=dict)
    # Server time the last evaluated reading arrived (freshness is judged on our clock).
    last_seen: datetime | None = None
    # Device time of the last evaluated reading (capped at its arrival), to order readings.
    last_observed: datetime | None = None
    # The alarm evaluator's state (pending periods, hysteresis, flapping, heartbeat); None
    # until the first reading since the process started.
    evaluation: DeviceEvaluation | None = None
    # A person works on the device (docs/device-health.md); set and ended by maintenance
    # tickets (issue 11, item 5), not by telemetry.
    under_maintenance: bool = False

    @property
    def abnormal(self) -> frozenset[Category]:
        """The categories with an open alarm that makes the device abnormal (communication lost
        is told as UNKNOWN instead)."""
        return frozenset(c for c in self.open_alarms if c is not Category.COMMUNICATION)

    def first_open_alarm(self) -> OpenAlarm | None:
        alarms = [a for c, a in self.open_alarms.items() if c is not Category.COMMUNICATION]
        if not alarms:
            return None
        return min(alarms, key=lambda a: (a.raised_at, a.alarm_id))


_DEVICE_STATE_SLOTS = slot_setters(DeviceState)


def new_device_state(
    device_id: str,
    open_alarms: Mapping[Category, OpenAlarm],
    last_seen: datetime | None,
    last_observed: datetime | None,
    evaluation: DeviceEvaluation | None,
    under_maintenance: bool,
    _new: Callable[[type[DeviceState]], DeviceState] = object.__new__,
    _set: tuple[Callable[[Any, Any], None], ...] = _DEVICE_STATE_SLOTS,
) -> DeviceState:
    """``DeviceState(...)`` with every field given in order, through its slots (one per
    sample: ``devices.quiet_observer``)."""
    state = _new(DeviceState)
    _set[0](state, device_id)
    _set[1](state, open_alarms)
    _set[2](state, last_seen)
    _set[3](state, last_observed)
    _set[4](state, evaluation)
    _set[5](state, under_maintenance)
    return state


@dataclass(frozen=True)
class RaisedAlarm:
    alarm_id: str
    finding: Finding
    # Born under the device's open root alarm (domain/alarms.py).
    parent_id: str | None = None


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
    # None for a change a clock tick made (communication lost).
    reading: Reading | None
    # Every decision of the evaluator behind this change (also those that open or close no
    # alarm: pending ended in a warning, severity changed, flapping).
    transitions: tuple[Transition, ...] = ()
    # Open alarms whose severity changed: (alarm, new severity).
    severity_changes: tuple[tuple[OpenAlarm, Severity], ...] = ()
    # Open alarms whose fault came back while they stood (the alarm after the count rose).
    repeated: tuple[tuple[Category, OpenAlarm], ...] = ()
    # Open alarms correlated under a root, or released from one.
    correlated: tuple[Correlated, ...] = ()
    # The device's condition after the change.
    condition: Condition | None = None
    # Every open alarm after the change, by category.
    open_after: Mapping[Category, OpenAlarm] = field(default_factory=dict)
    # The abnormal categories before the change (None: not known), so that a turn of the
    # device's fitness to work on is seen (domain/work.py).
    abnormal_before: frozenset[Category] | None = None

    @property
    def health_changed(self) -> bool:
        """Whether the abnormal categories moved (communication lost is not one of them)."""
        return any(r.finding.category is not Category.COMMUNICATION for r in self.raised) or any(
            c.category is not Category.COMMUNICATION for c in self.cleared
        )


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
    # healthy / degraded / abnormal / under maintenance (domain/condition.py).
    condition: Condition | None = None
    # Every category failing now (pending, raised or flapping), from the evaluator.
    failing: tuple[Failing, ...] = ()
    # The open alarms, by category (a root's children included).
    open_alarms: Mapping[Category, OpenAlarm] = field(default_factory=dict)


@dataclass(frozen=True)
class FitnessReason:
    code: str
    category: Category | None
    alarm_ids: tuple[str, ...]
    # "English | 中文"
    text: str


@dataclass(frozen=True)
class Fitness:
    fit: bool
    health: HealthView
    reasons: tuple[str, ...]
    alarm_id: str
    details: tuple[FitnessReason, ...] = ()


def fitness(view: HealthView) -> Fitness:
    """Fit to be worked on only when GOOD (healthy or degraded) and not under maintenance;
    otherwise every reason why not: one per abnormal category with its alarm and the children
    correlated under it, lost communication, maintenance."""
    # Imported here: domain/alarms.py builds on this module's values.
    from orderline_device_monitor.domain.alarms import CATEGORY_NAMES, SEVERITY_NAMES, says

    details: list[FitnessReason] = []
    for category in view.abnormal:
        alarm = view.open_alarms.get(category)
        ids: tuple[str, ...] = ()
        severity = Severity.CRITICAL if category is Category.SAFETY else Severity.MAJOR
        if alarm is not None:
            children = tuple(
                a.alarm_id for a in view.open_alarms.values() if a.parent_id == alarm.alarm_id
            )
            ids = (alarm.alarm_id, *children)
            severity = alarm.severity
        en, zh = CATEGORY_NAMES[category]
        sev_en, sev_zh = SEVERITY_NAMES[severity]
        details.append(
            FitnessReason(
                abnormal_reason(category),
                category,
                ids,
                says(f"device abnormal: {en} ({sev_en})", f"设备异常：{zh}（{sev_zh}）"),
            )
        )
    if view.stale:
        lost = view.open_alarms.get(Category.COMMUNICATION)
        details.append(
            FitnessReason(
                NO_RECENT_TELEMETRY,
                Category.COMMUNICATION if lost else None,
                (lost.alarm_id,) if lost else (),
                says(
                    "no telemetry from the device within its heartbeat interval",
                    "在心跳周期内未收到设备遥测数据",
                ),
            )
        )
    maintenance = view.condition is Condition.UNDER_MAINTENANCE
    if maintenance:
        details.append(
            FitnessReason(
                UNDER_MAINTENANCE,
                None,
                (),
                says("the device is under maintenance", "设备正在维护中"),
            )
        )
    fit = view.state is HealthState.GOOD and not maintenance
    return Fitness(
        fit=fit,
        health=view,
        reasons=() if fit else tuple(d.code for d in details),
        alarm_id=view.open_alarm_id,
        details=() if fit else tuple(details),
    )
