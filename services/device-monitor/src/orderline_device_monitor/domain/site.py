# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""Site-level root cause, pure: many devices behind one access node losing their line at once
is one fault of the node, not many faults of devices.

Each device's telemetry names the access node its line hangs off (``AN-01``). When line alarms
rise on enough devices behind one node within a short window (``SiteRule``, from the rules
file: at least ``min_devices``, or ``min_share_pct`` % of the node's known devices if that is
fewer, never fewer than two), one **access-node alarm** rises (TMF642 shape, probable cause
``accessNodeFailure``, its subject the node) and every open line alarm of the node's devices
becomes its **child** (``OpenAlarm.site_parent_id``); a line alarm raised while the node alarm
stands is adopted as well. Children are listed, recorded and published as before, but are not
escalated on their own (no remote reboot, no ticket per device) while the node alarm stands.
The node alarm **clears** when fewer than the threshold of its devices still have a line alarm
open; its children still open are released and stand on their own again.

Everything here runs on the alarms' own times (the samples' times, capped by the service's
clock), so replaying the same samples gives the same node alarms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderline_device_monitor.domain.alarms import says
from orderline_device_monitor.domain.health import Category, Severity
from orderline_device_monitor.domain.rules import SiteRule

# TMF642 / X.733: the node the devices hang off has failed.
ACCESS_NODE_PROBABLE_CAUSE = "accessNodeFailure"
# The category a node alarm is filed under (the devices' line alarms are its children).
ACCESS_NODE_CATEGORY = Category.LINE
ACCESS_NODE_SEVERITY = Severity.MAJOR


@dataclass(frozen=True)
class LineAlarm:
    """An open line alarm of a device behind the node."""

    device_id: str
    alarm_id: str
    raised_at: datetime
    # The node alarm it is a child of, if any.
    site_parent_id: str | None = None


@dataclass(frozen=True)
class NodeAlarm:
    """The open alarm of an access node."""

    alarm_id: str
    node_id: str
    raised_at: datetime


@dataclass(frozen=True)
class RaiseNode:
    alarm: NodeAlarm
    # The line alarms that become its children (devices ordered by id).
    children: tuple[LineAlarm, ...]
    detail: str


@dataclass(frozen=True)
class AdoptChildren:
    alarm: NodeAlarm
    children: tuple[LineAlarm, ...]


@dataclass(frozen=True)
class ClearNode:
    alarm: NodeAlarm
    # Its children still open: released (they stand on their own again).
    released: tuple[LineAlarm, ...]
    at: datetime
    detail: str


SiteDecision = RaiseNode | AdoptChildren | ClearNode | None


def busiest_window(raised: Sequence[datetime], rule: SiteRule) -> tuple[int, datetime | None]:
    """The most alarms raised within any span of ``rule.window`` (both ends included), and
    when the last of them rose."""
    times = sorted(raised)
    best, at = 0, None
    start = 0
    for end, time in enumerate(times):
        while time - times[start] > rule.window:
            start += 1
        if end - start + 1 > best:
            best, at = end - start + 1, time
    return best, at


def assess(
    node_id: str,
    node_devices: int,
    line_alarms: Sequence[LineAlarm],
    current: NodeAlarm | None,
    rule: SiteRule,
    *,
    new_alarm_id: Callable[[], str],
    now: datetime,
) -> SiteDecision:
    """What to do about one access node, given its devices' open line alarms (one per device
    at most) and its open node alarm, if any. ``node_devices``: the devices known behind it.
    ``now``: when a clear happens (the time of the batch that made it)."""
    threshold = rule.threshold(node_devices)
    if current is None:
        count, at = busiest_window([a.raised_at for a in line_alarms], rule)
        if count < threshold or at is None:
            return None
        alarm = NodeAlarm(new_alarm_id(), node_id, at)
        children = tuple(sorted(line_alarms, key=lambda a: (a.device_id, a.alarm_id)))
        window_s = rule.window.total_seconds()
        detail = says(
            f"line lost on {count} of {node_devices} devices behind access node {node_id} "
            f"within {window_s:g} s (threshold {threshold})",
            f"接入节点 {node_id} 下 {node_devices} 台设备中有 {count} 台在 {window_s:g} 秒内"
            f"线路异常（阈值 {threshold}）",
        )
        return RaiseNode(alarm, children, detail)
    if len(line_alarms) < threshold:
        released = tuple(
            sorted(
                (a for a in line_alarms if a.site_parent_id == current.alarm_id),
                key=lambda a: (a.device_id, a.alarm_id),
            )
        )
        detail = says(
            f"{len(line_alarms)} devices behind access node {node_id} still without line "
            f"(threshold {threshold})",
            f"接入节点 {node_id} 下仍有 {len(line_alarms)} 台设备线路异常（阈值 {threshold}）",
        )
        return ClearNode(current, released, now, detail)
    orphans = tuple(
        sorted(
            (a for a in line_alarms if a.site_parent_id != current.alarm_id),
            key=lambda a: (a.device_id, a.alarm_id),
        )
    )
    return AdoptChildren(current, orphans) if orphans else None
