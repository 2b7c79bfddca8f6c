"""Whether work may go on on a device, and the moments that changes: `device.abnormal` when a
device turns unfit to work on, `device.recovered` when it is fit again.

Work stops on a device with an alarm open at abnormal level (major or critical, any safety
failure) or under maintenance; it may go on on a healthy or degraded one. Communication lost is
not a turn: a device that cannot be heard is told as UNKNOWN (CheckFitness refuses it before
any configuration), and a telemetry gap is no fault of the device that should stop a job whose
calls to the device still succeed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orderline_device_monitor.domain.health import Category, OpenAlarm, Severity


class Turn(enum.Enum):
    ABNORMAL = "abnormal"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class BlockingAlarm:
    """An open alarm that stops work on its device."""

    alarm_id: str
    category: Category
    severity: Severity


def blocks_work(abnormal: Iterable[Category], *, under_maintenance: bool) -> bool:
    """Work stops: an abnormal category (communication aside) or maintenance."""
    return under_maintenance or any(c is not Category.COMMUNICATION for c in abnormal)


def turn(*, blocked_before: bool, blocked_after: bool) -> Turn | None:
    """The turn between two moments of one device, if any."""
    if blocked_after and not blocked_before:
        return Turn.ABNORMAL
    if blocked_before and not blocked_after:
        return Turn.RECOVERED
    return None


def blocking_alarms(open_alarms: Mapping[Category, OpenAlarm]) -> tuple[BlockingAlarm, ...]:
    """The open alarms that stop work, the first raised first (roots before their children
    when raised together)."""
    alarms = [
        (a.raised_at, a.parent_id is not None, a.alarm_id, c, a.severity)
        for c, a in open_alarms.items()
        if c is not Category.COMMUNICATION
    ]
    return tuple(BlockingAlarm(i, c, s) for _, _, i, c, s in sorted(alarms))


def worst(alarms: Iterable[BlockingAlarm]) -> Severity | None:
    severities = [a.severity for a in alarms]
    return max(severities) if severities else None
