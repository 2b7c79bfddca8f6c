"""What a fitness answer from device-monitor means for the job."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from orderline_provisioning.domain.job import (
    DEVICE_ABNORMAL,
    DEVICE_MONITOR_UNAVAILABLE,
    DEVICE_UNFIT,
    NO_TELEMETRY,
)


class Health(enum.StrEnum):
    GOOD = "good"
    ABNORMAL = "abnormal"
    # No telemetry yet: the device may still be booting.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Fitness:
    fit: bool
    health: Health
    alarm_id: str = ""
    reasons: tuple[str, ...] = ()


class Verdict(enum.Enum):
    PASS = "pass"
    HOLD = "hold"
    RETRY = "retry"


@dataclass(frozen=True)
class PrecheckDecision:
    verdict: Verdict
    reason: str = ""
    alarm_id: str = ""


def decide_prechecks(
    fitness: Fitness | None, waited: timedelta, wait: timedelta
) -> PrecheckDecision:
    """`fitness` None: device-monitor did not answer.

    Fit passes. Abnormal holds at once with the alarm. No answer or no telemetry yet is
    retried until `wait` has passed since the step began, then held.
    """
    if fitness is None:
        reason = DEVICE_MONITOR_UNAVAILABLE
    elif fitness.fit:
        return PrecheckDecision(Verdict.PASS)
    elif fitness.health is Health.ABNORMAL:
        return PrecheckDecision(Verdict.HOLD, DEVICE_ABNORMAL, fitness.alarm_id)
    elif fitness.health is Health.UNKNOWN:
        reason = NO_TELEMETRY
    else:
        # Good health but not fit (e.g. a check device-monitor applies beyond health).
        return PrecheckDecision(Verdict.HOLD, DEVICE_UNFIT, fitness.alarm_id)
    if waited >= wait:
        return PrecheckDecision(Verdict.HOLD, reason)
    return PrecheckDecision(Verdict.RETRY, reason)
