"""What device-monitor's use cases read back: alarms, anomaly records, which order a device
is in use for. Plain values; the repository builds them from rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderline_device_monitor.domain.health import Category, Severity

ALARM_RAISED = "RAISED"
# What an alarm is about (TMF642 alarmedObjectType).
DEVICE_OBJECT = "device"
ACCESS_NODE_OBJECT = "accessNode"
ALARM_CLEARED = "CLEARED"
# TicketState.CLOSED's value, as stored (the open-ticket index names it).
TICKET_CLOSED = "closed"


@dataclass(frozen=True)
class AlarmRecord:
    id: str
    device_id: str
    category: Category
    state: str
    detail: str
    raised_at: datetime
    cleared_at: datetime | None
    order_id: str | None
    severity: Severity | None = None
    rules_version: str | None = None
    probable_cause: str | None = None
    repeat_count: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None
    is_root_cause: bool = False
    parent_alarm_id: str | None = None
    suppressed: bool = False
    updated_at: datetime | None = None
    alarmed_object_type: str = DEVICE_OBJECT

    @property
    def is_open(self) -> bool:
        return self.state == ALARM_RAISED

    @property
    def is_access_node(self) -> bool:
        return self.alarmed_object_type == ACCESS_NODE_OBJECT


@dataclass(frozen=True)
class AlarmFilter:
    """ListAlarms' filters; an empty collection or None means any."""

    device_id: str | None = None
    only_open: bool = False
    severities: frozenset[Severity] = frozenset()
    # Of ALARM_RAISED / ALARM_CLEARED (TMF642 "updated" is an open alarm, so RAISED).
    states: frozenset[str] = frozenset()
    categories: frozenset[Category] = frozenset()
    acknowledged: bool | None = None


@dataclass(frozen=True)
class AnomalyRecord:
    id: str
    alarm_id: str
    device_id: str
    category: Category
    readings: Mapping[str, float | bool]
    snapshot: Mapping[str, float | bool]
    first_seen_at: datetime
    order_id: str | None
    job_id: str | None
    recorded_at: datetime
    device_model: str | None = None
    detail: str | None = None
    last_seen_at: datetime | None = None
    # Samples around onset, oldest first: each a reading's values with "device_id" and
    # "observed_at" (ISO 8601); `onset_index` is the one that raised the alarm.
    samples: Sequence[Mapping[str, Any]] = ()
    onset_index: int | None = None
    # First-line actions tried: {"action", "at", "outcome", "detail"}.
    actions: Sequence[Mapping[str, Any]] = ()
    ticket_id: str | None = None
    root_cause_code: str | None = None
    corrective_action_code: str | None = None
    resolution_note: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class AnomalyFilter:
    """ListAnomalies' filters; empty or None means any. The period is on first_seen_at."""

    device_model: str | None = None
    device_id: str | None = None
    categories: frozenset[Category] = frozenset()
    first_seen_from: datetime | None = None
    first_seen_before: datetime | None = None


@dataclass(frozen=True)
class TicketFilter:
    device_id: str | None = None
    # TicketState values.
    states: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Usage:
    order_id: str
    job_id: str
    started_at: datetime


@dataclass(frozen=True)
class TicketRequest:
    """A device problem reported at a follow-up (intake's trouble case), waiting for a ticket."""

    case_id: str
    device_id: str
    order_id: str
    requested_by: str
    requested_at: datetime
