# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""Alarms in the TMF642 shape, pure: probable causes, device-level root-cause correlation, and
the texts a clerk or engineer reads.

Deduplication is per device and category: at most one open alarm of a category per device; a
fault that comes back while its alarm still stands (during the keep-firing time or while
flapping) counts as a repeat of that alarm, never as a second alarm.

Root cause at device level: a communication-lost or safety alarm is a **root**; while one is
open, every other open alarm of the device is its **child** (suppressed: counted under the
root, still listed and recorded). With two roots open, the one raised first is the root and
the other its child. When the root clears, its children still open are released (they stand
on their own again, keeping the record of their former parent).

A device's line alarm may also be the child of an **access-node alarm** (site level,
``domain/site.py``): ``OpenAlarm.site_parent_id``. A root of the device itself comes first;
without one, the access-node alarm is the parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from orderline_device_monitor.domain.health import Category, OpenAlarm, Severity

ROOT_CATEGORIES: frozenset[Category] = frozenset({Category.COMMUNICATION, Category.SAFETY})

# X.733 / M.3100 probable causes (TMF642 probableCause), one per category.
PROBABLE_CAUSE: Mapping[Category, str] = {
    Category.MECHANICAL: "excessiveVibration",
    Category.DISPLAY: "videoSubsystemFailure",
    Category.INPUT: "inputDeviceError",
    Category.LINE: "lossOfSignal",
    Category.RESOURCES: "cpuCyclesLimitExceeded",
    Category.THERMAL: "temperatureUnacceptable",
    Category.SAFETY: "equipmentMalfunction",
    Category.COMMUNICATION: "communicationSubsystemFailure",
}

# Names in English and zh-CN, for texts that reach a clerk or engineer.
CATEGORY_NAMES: Mapping[Category, tuple[str, str]] = {
    Category.MECHANICAL: ("noise or vibration", "噪声或振动"),
    Category.DISPLAY: ("display", "显示"),
    Category.INPUT: ("key response", "按键响应"),
    Category.LINE: ("line", "线路"),
    Category.RESOURCES: ("CPU, memory or disk", "CPU、内存或磁盘"),
    Category.THERMAL: ("temperature", "温度"),
    Category.SAFETY: ("safety protection", "安全保护"),
    Category.COMMUNICATION: ("communication", "通信"),
}

SEVERITY_NAMES: Mapping[Severity, tuple[str, str]] = {
    Severity.WARNING: ("warning", "警告"),
    Severity.MINOR: ("minor", "次要"),
    Severity.MAJOR: ("major", "主要"),
    Severity.CRITICAL: ("critical", "严重"),
}


def says(en: str, zh_cn: str) -> str:
    """A text in both languages we serve, "English | 中文" as elsewhere in Orderline."""
    return f"{en} | {zh_cn}"


def probable_cause(category: Category) -> str:
    return PROBABLE_CAUSE[category]


def is_root(category: Category) -> bool:
    return category in ROOT_CATEGORIES


def correlate(open_alarms: Mapping[Category, OpenAlarm]) -> dict[str, str | None]:
    """Each open alarm's parent: the device's root alarm; without one (or for the root itself)
    the access-node alarm it is a child of, if any; else None. The root is the open root alarm
    raised first (ties by id)."""
    roots = sorted(
        (a for c, a in open_alarms.items() if is_root(c)),
        key=lambda a: (a.raised_at, a.alarm_id),
    )
    root = roots[0] if roots else None
    return {
        a.alarm_id: (root.alarm_id if root is not None and a is not root else a.site_parent_id)
        for a in open_alarms.values()
    }


@dataclass(frozen=True)
class Correlated:
    """An open alarm whose parent moved: correlated under a root, or released (parent None)."""

    category: Category
    alarm: OpenAlarm
    parent_id: str | None


def recorrelate(
    open_alarms: Mapping[Category, OpenAlarm],
) -> tuple[dict[Category, OpenAlarm], tuple[Correlated, ...]]:
    """The open alarms with their parents brought up to date, and those whose parent moved
    (a new alarm is born with its parent, and is not among them)."""
    parents = correlate(open_alarms)
    updated: dict[Category, OpenAlarm] = {}
    moved: list[Correlated] = []
    for category, alarm in open_alarms.items():
        parent = parents[alarm.alarm_id]
        if parent != alarm.parent_id:
            alarm = replace(alarm, parent_id=parent)
            moved.append(Correlated(category, alarm, parent))
        updated[category] = alarm
    return updated, tuple(moved)


@dataclass(frozen=True)
class AlarmStatus:
    """What a person may do to an alarm depends on this much of it."""

    alarm_id: str
    is_open: bool
    acknowledged_by: str | None


class AlarmNotOpen(ValueError):
    """Acknowledging or clearing an alarm already cleared."""


def check_acknowledge(status: AlarmStatus) -> bool:
    """Whether acknowledging changes anything: a cleared alarm may not be acknowledged; the
    first acknowledgement stands (a second one, by anyone, changes nothing)."""
    if not status.is_open:
        raise AlarmNotOpen(
            says(
                f"alarm {status.alarm_id} is cleared; only an open alarm can be acknowledged",
                f"告警 {status.alarm_id} 已清除，只能确认未清除的告警",
            )
        )
    return status.acknowledged_by is None


def check_clear(status: AlarmStatus) -> None:
    if not status.is_open:
        raise AlarmNotOpen(
            says(
                f"alarm {status.alarm_id} is already cleared",
                f"告警 {status.alarm_id} 已经清除",
            )
        )
