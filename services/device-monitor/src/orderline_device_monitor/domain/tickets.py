# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""Maintenance tickets in the TMF621 shape, pure: the states, the one table of legal steps, the
code lists for root cause and corrective action, and the checks a step must pass.

acknowledged → inProgress → resolved → closed. A ticket is **open** until it is closed; while it
is open its device is under maintenance (``condition.py``). A resolved ticket closes only when
the device is confirmed healthy by telemetry after the resolution, or a person confirms it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from orderline_device_monitor.domain.alarms import says
from orderline_device_monitor.domain.health import Category


class TicketState(enum.Enum):
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Step(enum.Enum):
    PROGRESS = "progress"
    RESOLVE = "resolve"
    CLOSE = "close"


STEPS: Mapping[tuple[TicketState, Step], TicketState] = {
    (TicketState.ACKNOWLEDGED, Step.PROGRESS): TicketState.IN_PROGRESS,
    (TicketState.IN_PROGRESS, Step.RESOLVE): TicketState.RESOLVED,
    (TicketState.RESOLVED, Step.CLOSE): TicketState.CLOSED,
}
"""Every legal (state, step) → next state; any other pair is FAILED_PRECONDITION."""

# Why a ticket was opened.
SAFETY_FAILURE = "SAFETY_FAILURE"
NOT_RECOVERED = "NOT_RECOVERED"
REPORTED = "REPORTED"

# Why a ticket closed.
DEVICE_CONFIRMED_HEALTHY = "DEVICE_CONFIRMED_HEALTHY"
PERSON_CONFIRMED = "PERSON_CONFIRMED"

# Who escalation and telemetry act as.
SYSTEM = "device-monitor"

ROOT_CAUSES: Mapping[str, tuple[str, str]] = {
    "MECHANICAL_WEAR": (
        "worn or loose mechanical part (fan, mount)",
        "机械部件磨损或松动（风扇、支架）",
    ),
    "DISPLAY_HARDWARE": ("display hardware fault", "显示硬件故障"),
    "DISPLAY_SOFTWARE": ("display software fault (driver, freeze)", "显示软件故障（驱动、死机）"),
    "BAD_CONTACT": ("bad contact (keys, connectors)", "接触不良（按键、接口）"),
    "INTERNAL_COMPONENT": ("internal component failure", "内部元件故障"),
    "LINE_DAMAGED": ("damaged line or connector", "线路或接头损坏"),
    "LINE_INTERFERENCE": ("line interference", "线路干扰"),
    "MALWARE": ("malware", "恶意软件"),
    "BAD_CONFIGURATION": ("bad configuration", "配置错误"),
    "POOR_COOLING": (
        "poor cooling (blocked vents, failed fan)",
        "散热不良（通风口堵塞、风扇故障）",
    ),
    "OVERLOAD": ("overload", "负载过高"),
    "PROTECTION_FAILED": ("safety protection failed", "安全保护失效"),
    "POWER_SUPPLY": ("power supply fault", "电源故障"),
    "NO_FAULT_FOUND": ("no fault found", "未发现故障"),
}
"""Root causes (the brief's seven abnormal states and what each usually means), EN and zh-CN."""

CORRECTIVE_ACTIONS: Mapping[str, tuple[str, str]] = {
    "REBOOTED": ("device restarted", "设备已重启"),
    "CONFIGURATION_RESTORED": ("configuration restored", "配置已恢复"),
    "FIRMWARE_UPDATED": ("firmware updated", "固件已更新"),
    "MALWARE_REMOVED": ("malware removed", "恶意软件已清除"),
    "CONTACT_CLEANED": ("contacts cleaned or reseated", "触点已清洁或重新插接"),
    "COMPONENT_REPLACED": ("component replaced", "部件已更换"),
    "DEVICE_REPLACED": ("device replaced", "设备已更换"),
    "LINE_REPAIRED": ("line repaired", "线路已修复"),
    "COOLING_RESTORED": (
        "cooling restored (vents cleared, fan replaced)",
        "散热已恢复（清理通风口、更换风扇）",
    ),
    "LOAD_REDUCED": ("load reduced", "负载已降低"),
    "PROTECTION_RESTORED": ("safety protection restored", "安全保护已恢复"),
    "NO_ACTION_NEEDED": ("no action needed", "无需处理"),
}
"""Corrective actions, EN and zh-CN."""

DESCRIPTION_MAX = 1000
NOTE_MAX = 1000


@dataclass(frozen=True)
class Note:
    at: datetime
    by: str
    state: TicketState
    text: str


@dataclass(frozen=True)
class Ticket:
    id: str
    device_id: str
    state: TicketState
    reason_code: str
    category: Category | None
    description: str
    order_id: str | None
    alarm_id: str | None
    opened_at: datetime
    opened_by: str
    updated_at: datetime
    history: tuple[Note, ...] = ()
    root_cause_code: str | None = None
    corrective_action_code: str | None = None
    resolution_note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    anomaly_ids: tuple[str, ...] = field(default=())
    # The first-line actions tried before it opened, from its anomaly records:
    # {"action", "at", "outcome", "detail"}.
    actions_tried: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def is_open(self) -> bool:
        return self.state is not TicketState.CLOSED


class SameResolver(ValueError):
    """A person tried to confirm the repair they resolved themselves."""

    def __init__(self, ticket: Ticket, by: str) -> None:
        super().__init__(
            f"four-eyes: {by} resolved ticket {ticket.id} and cannot confirm the repair; "
            "another engineer or maintenance person must, or the device's telemetry closes it "
            "once it is healthy"
        )
        self.ticket = ticket


class IllegalTicketStep(ValueError):
    """A step the ticket's state does not allow (FAILED_PRECONDITION)."""

    def __init__(self, ticket: Ticket, step: Step) -> None:
        allowed = {
            Step.PROGRESS: TicketState.ACKNOWLEDGED,
            Step.RESOLVE: TicketState.IN_PROGRESS,
            Step.CLOSE: TicketState.RESOLVED,
        }[step]
        super().__init__(
            says(
                f"ticket {ticket.id} is {ticket.state.value}; {step.value} needs it "
                f"{allowed.value}",
                f"工单 {ticket.id} 当前为 {ticket.state.value}，{_STEP_ZH[step]}需要工单处于 "
                f"{allowed.value}",
            )
        )
        self.ticket = ticket
        self.step = step


_STEP_ZH = {Step.PROGRESS: "开始处理", Step.RESOLVE: "解决", Step.CLOSE: "关闭"}


def open_ticket(
    *,
    ticket_id: str,
    device_id: str,
    reason_code: str,
    category: Category | None,
    description: str,
    order_id: str | None,
    alarm_id: str | None,
    by: str,
    at: datetime,
) -> Ticket:
    """A new ticket: acknowledged (TMF621's first state: recorded and accepted)."""
    return Ticket(
        id=ticket_id,
        device_id=device_id,
        state=TicketState.ACKNOWLEDGED,
        reason_code=reason_code,
        category=category,
        description=description,
        order_id=order_id,
        alarm_id=alarm_id,
        opened_at=at,
        opened_by=by,
        updated_at=at,
        history=(Note(at, by, TicketState.ACKNOWLEDGED, description),),
    )


def _step(ticket: Ticket, step: Step) -> TicketState:
    after = STEPS.get((ticket.state, step))
    if after is None:
        raise IllegalTicketStep(ticket, step)
    return after


def add_report(ticket: Ticket, *, by: str, at: datetime, text: str) -> Ticket:
    """A further report of a problem on a device whose ticket is open: kept in its history."""
    return replace(
        ticket, updated_at=at, history=(*ticket.history, Note(at, by, ticket.state, text))
    )


def progress(ticket: Ticket, *, by: str, at: datetime, note: str = "") -> Ticket:
    state = _step(ticket, Step.PROGRESS)
    return replace(
        ticket,
        state=state,
        updated_at=at,
        history=(*ticket.history, Note(at, by, state, note)),
    )


def resolve(
    ticket: Ticket,
    *,
    by: str,
    at: datetime,
    root_cause_code: str,
    corrective_action_code: str,
    note: str = "",
) -> Ticket:
    state = _step(ticket, Step.RESOLVE)
    return replace(
        ticket,
        state=state,
        updated_at=at,
        root_cause_code=root_cause_code,
        corrective_action_code=corrective_action_code,
        resolution_note=note or None,
        resolved_by=by,
        resolved_at=at,
        history=(*ticket.history, Note(at, by, state, note)),
    )


def close(
    ticket: Ticket,
    *,
    by: str,
    at: datetime,
    confirmed_by_person: bool,
    device_healthy: bool = False,
    note: str = "",
) -> Ticket:
    """resolved → closed, only on a person's confirmation or a device confirmed healthy.
    Four-eyes: the person who resolved it is not the one who confirms it (SameResolver);
    telemetry confirming the device healthy may close it whoever resolved it."""
    state = _step(ticket, Step.CLOSE)
    if not confirmed_by_person and not device_healthy:
        raise IllegalTicketStep(ticket, Step.CLOSE)
    if confirmed_by_person and not device_healthy and by == ticket.resolved_by:
        raise SameResolver(ticket, by)
    reason = PERSON_CONFIRMED if confirmed_by_person else DEVICE_CONFIRMED_HEALTHY
    return replace(
        ticket,
        state=state,
        updated_at=at,
        closed_by=by,
        closed_at=at,
        close_reason=reason,
        history=(*ticket.history, Note(at, by, state, note or reason)),
    )


def confirmed_healthy(
    ticket: Ticket, *, last_seen: datetime | None, healthy: bool, abnormal: bool
) -> bool:
    """A resolved ticket's device is confirmed healthy by telemetry: it was heard after the
    resolution and nothing is failing or open."""
    return (
        ticket.state is TicketState.RESOLVED
        and ticket.resolved_at is not None
        and last_seen is not None
        and last_seen > ticket.resolved_at
        and healthy
        and not abnormal
    )


def text_problem(text: str, limit: int, *, required: bool) -> str | None:
    if not text.strip():
        return "required | 必填" if required else None
    if len(text) > limit or not all(c.isprintable() or c in "\n\t" for c in text):
        return f"at most {limit} printable characters | 最多 {limit} 个可打印字符"
    return None


def resolution_problems(root_cause_code: str, corrective_action_code: str) -> list[tuple[str, str]]:
    """(field, description) for each code not on its list."""
    problems: list[tuple[str, str]] = []
    for name, code, known in (
        ("root_cause_code", root_cause_code, ROOT_CAUSES),
        ("corrective_action_code", corrective_action_code, CORRECTIVE_ACTIONS),
    ):
        if not code:
            problems.append((name, "required: one of the code list | 必填：取自代码表"))
        elif code not in known:
            problems.append(
                (name, f"one of {', '.join(known)} | 必须是代码表中的值"),
            )
    return problems
