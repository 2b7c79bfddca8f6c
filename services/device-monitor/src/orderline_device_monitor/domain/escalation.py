# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""Escalation, pure: what to do about a device with open alarms, from first-line troubleshooting
to a maintenance ticket.

Per device, while it has open alarms and no open ticket (an **episode**):

- a **safety failure** opens a ticket at once, and nothing is tried on the device (a remote
  action on a device whose protection failed could hurt someone);
- otherwise each open category's **first-line action** is tried once per episode, where one is
  safe (``FIRST_LINE``): a remote reboot for a display freeze, slow keys, a line that lost sync
  or starved resources. Nothing is tried on a device that cannot be reached (communication
  lost), nor on one under maintenance (a person works on it);
- if the device has not recovered when the **recovery window** has passed since the episode's
  first alarm, a ticket opens (``NOT_RECOVERED``).

Children of a device's root alarm count like the others: the episode is the device's, not an
alarm's. Children of an access-node alarm do not (``domain/site.py``): while the node alarm
stands, the node is the fault, and the device is not rebooted or ticketed for it; once
released, the recovery window runs from their own raise.

The recovery window comes from the rules file (``escalation.recovery_window_s``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderline_device_monitor.domain.alarms import CATEGORY_NAMES, says
from orderline_device_monitor.domain.health import Category, DeviceState
from orderline_device_monitor.domain.tickets import NOT_RECOVERED, SAFETY_FAILURE


class Action(enum.Enum):
    REBOOT = "REBOOT"


FIRST_LINE: Mapping[Category, Action | None] = {
    # A fan or mount that rattles needs hands; the window lets a transient knock pass.
    Category.MECHANICAL: None,
    # Artefacts or a freeze are often software: a restart clears them.
    Category.DISPLAY: Action.REBOOT,
    # Slow keys from a hung input process: a restart; bad contact stays and is escalated.
    Category.INPUT: Action.REBOOT,
    # A restart retrains the line; a damaged line stays and is escalated.
    Category.LINE: Action.REBOOT,
    # Starved CPU, memory or disk (a runaway process): a restart frees them.
    Category.RESOURCES: Action.REBOOT,
    # Overheating: restarting a hot device does not cool it; the window lets a load peak pass.
    Category.THERMAL: None,
    # Never: a failed protection is a hazard; a ticket opens at once.
    Category.SAFETY: None,
    # An unreachable device cannot be told anything.
    Category.COMMUNICATION: None,
}
"""The safe first-line action per category, or None: only waiting out the recovery window."""

DEFAULT_RECOVERY_WINDOW = timedelta(minutes=5)

# Outcomes of a tried action.
DONE = "DONE"
FAILED = "FAILED"
UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class EscalationPolicy:
    recovery_window: timedelta = DEFAULT_RECOVERY_WINDOW
    # How long a line alarm waits before its device is rebooted: the site window, so that an
    # access node losing many lines is recognised first (its children are not rebooted).
    line_hold: timedelta = timedelta(0)


@dataclass(frozen=True)
class Tried:
    """A first-line action tried in the device's episode."""

    action: Action
    at: datetime
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class TryAction:
    action: Action
    # The categories it is tried for.
    categories: tuple[Category, ...]


@dataclass(frozen=True)
class OpenTicket:
    reason_code: str
    # The category the ticket is about: safety when it failed, else the episode's first alarm's.
    category: Category
    # That alarm.
    alarm_id: str


Decision = TryAction | OpenTicket | None


def episode_start(state: DeviceState) -> datetime | None:
    """When the device's earliest open alarm was raised; None with no alarm open."""
    if not state.open_alarms:
        return None
    return min(a.raised_at for a in state.open_alarms.values())


def decide(
    state: DeviceState,
    tried: tuple[Tried, ...],
    now: datetime,
    policy: EscalationPolicy,
    *,
    not_before: datetime | None = None,
) -> Decision:
    """The next thing to do about a device; None: nothing now (healthy, recovering within the
    window, or already under maintenance). `not_before`: when the device's last ticket closed
    (the window of alarms still open then runs from there)."""
    if state.under_maintenance or not state.open_alarms:
        return None
    safety = state.open_alarms.get(Category.SAFETY)
    if safety is not None:
        return OpenTicket(SAFETY_FAILURE, Category.SAFETY, safety.alarm_id)
    # Children of a standing access-node alarm are the node's fault: not escalated on their
    # own (no reboot, no ticket) while it stands (domain/site.py).
    own = {c: a for c, a in state.open_alarms.items() if a.site_parent_id is None}
    if not own:
        return None
    reachable = Category.COMMUNICATION not in own
    done = {t.action for t in tried}
    if reachable:
        wanted: dict[Action, list[Category]] = {}
        for category, alarm in own.items():
            action = FIRST_LINE.get(category)
            if category is Category.LINE and now - alarm.raised_at < policy.line_hold:
                continue  # perhaps the access node's fault: wait for the site window
            if action is not None and action not in done:
                wanted.setdefault(action, []).append(category)
        for action, categories in wanted.items():
            return TryAction(action, tuple(sorted(categories, key=lambda c: c.value)))
    start = min(a.raised_at for a in own.values())
    if not_before is not None:
        start = max(start, not_before)
    if now - start >= policy.recovery_window:
        category, first = min(own.items(), key=lambda item: (item[1].raised_at, item[1].alarm_id))
        return OpenTicket(NOT_RECOVERED, category, first.alarm_id)
    return None


def ticket_description(decision: OpenTicket, tried: tuple[Tried, ...], window_s: float) -> str:
    en, zh = CATEGORY_NAMES[decision.category]
    if decision.reason_code == SAFETY_FAILURE:
        return says(
            "safety protection failed: ticket opened at once; nothing was tried on the device",
            "安全保护失效：已立即开单，未对设备进行任何操作",
        )
    actions = ", ".join(f"{t.action.value} ({t.outcome})" for t in tried) or "none"
    return says(
        f"{en} abnormal and not recovered within {window_s:g} s; first-line actions: {actions}",
        f"{zh}异常，{window_s:g} 秒内未恢复；一线处理：{actions if tried else '无'}",
    )
