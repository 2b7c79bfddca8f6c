"""A device's condition: healthy → degraded → abnormal → under maintenance → healthy.

One transition table, as data (``TRANSITIONS``), published in docs/device-health.md. The
condition is what the evaluator's verdict and a person's maintenance say together:

- **healthy**: nothing failing.
- **degraded**: something failing that does not stop work: a category pending (over a
  threshold, waiting out its rule's pending period) or raised only at warning or minor. A
  degraded device is fit to be worked on (on the wire's ``HealthState`` it is ``GOOD``).
- **abnormal**: an alarm open at major or critical, any safety failure, or communication lost.
- **under maintenance**: a person works on the device; nothing telemetry says takes it out of
  maintenance (an engineer pulling cables makes the readings meaningless), only the end of the
  maintenance does, to healthy, and the evaluation of that moment is applied at once.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Condition(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    ABNORMAL = "abnormal"
    UNDER_MAINTENANCE = "under_maintenance"


class Trigger(enum.Enum):
    """What moves a condition: the evaluation of a sample or tick, or a person."""

    EVALUATED_HEALTHY = "evaluated_healthy"
    EVALUATED_DEGRADED = "evaluated_degraded"
    EVALUATED_ABNORMAL = "evaluated_abnormal"
    MAINTENANCE_STARTED = "maintenance_started"
    MAINTENANCE_ENDED = "maintenance_ended"


_H, _D, _A, _M = (
    Condition.HEALTHY,
    Condition.DEGRADED,
    Condition.ABNORMAL,
    Condition.UNDER_MAINTENANCE,
)
_EH, _ED, _EA, _MS, _ME = (
    Trigger.EVALUATED_HEALTHY,
    Trigger.EVALUATED_DEGRADED,
    Trigger.EVALUATED_ABNORMAL,
    Trigger.MAINTENANCE_STARTED,
    Trigger.MAINTENANCE_ENDED,
)

TRANSITIONS: Mapping[tuple[Condition, Trigger], Condition] = {
    # Telemetry moves a device freely between healthy, degraded and abnormal: a safety failure
    # (pending 0) goes from healthy straight to abnormal, a major alarm that clears while a
    # warning remains goes back to degraded.
    (_H, _EH): _H,
    (_H, _ED): _D,
    (_H, _EA): _A,
    (_D, _EH): _H,
    (_D, _ED): _D,
    (_D, _EA): _A,
    (_A, _EH): _H,
    (_A, _ED): _D,
    (_A, _EA): _A,
    # Maintenance may start from any condition: preventive work on a healthy device too.
    (_H, _MS): _M,
    (_D, _MS): _M,
    (_A, _MS): _M,
    # Under maintenance, telemetry is recorded (alarms still rise and clear) but does not move
    # the condition; only the end of maintenance does.
    (_M, _EH): _M,
    (_M, _ED): _M,
    (_M, _EA): _M,
    (_M, _ME): _H,
}
"""Every legal (condition, trigger) → next condition; a pair not listed is illegal (maintenance
started twice, or ended on a device not under maintenance)."""


class IllegalTransition(ValueError):
    def __init__(self, condition: Condition, trigger: Trigger) -> None:
        super().__init__(f"{trigger.value} is not allowed while the device is {condition.value}")
        self.condition = condition
        self.trigger = trigger


def next_condition(condition: Condition, trigger: Trigger) -> Condition:
    try:
        return TRANSITIONS[(condition, trigger)]
    except KeyError:
        raise IllegalTransition(condition, trigger) from None


def evaluated(*, abnormal: bool, failing: bool) -> Trigger:
    """The trigger an evaluation gives: abnormal wins over anything merely failing."""
    if abnormal:
        return Trigger.EVALUATED_ABNORMAL
    if failing:
        return Trigger.EVALUATED_DEGRADED
    return Trigger.EVALUATED_HEALTHY


def condition_of(*, abnormal: bool, failing: bool, under_maintenance: bool) -> Condition:
    """The condition now. Equal to folding the table over the device's history, because every
    evaluated trigger is legal from every condition and leads to the same place outside
    maintenance; maintenance, while it lasts, absorbs them all."""
    start = (
        next_condition(Condition.HEALTHY, Trigger.MAINTENANCE_STARTED)
        if under_maintenance
        else (Condition.HEALTHY)
    )
    return next_condition(start, evaluated(abnormal=abnormal, failing=failing))


def end_maintenance(*, abnormal: bool, failing: bool) -> Condition:
    """Maintenance ends to healthy, then the evaluation of that moment applies: a device still
    failing is degraded or abnormal again at once."""
    after = next_condition(Condition.UNDER_MAINTENANCE, Trigger.MAINTENANCE_ENDED)
    return next_condition(after, evaluated(abnormal=abnormal, failing=failing))


def table_rows() -> list[tuple[str, str, str]]:
    """The table as (from, trigger, to) rows, for docs/device-health.md."""
    return [(c.value, t.value, to.value) for (c, t), to in TRANSITIONS.items()]
