"""device.* event payloads, and the mapping of domain values to their protobuf enums.

Existing events keep their fields and numbers; TMF642 fields are added after them, so a
consumer built before them reads what it always read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline_device_monitor.app.records import AlarmRecord
from orderline_device_monitor.domain.alarms import is_root, probable_cause
from orderline_device_monitor.domain.condition import Condition
from orderline_device_monitor.domain.health import (
    Category,
    ClearedAlarm,
    HealthState,
    OpenAlarm,
    RaisedAlarm,
    Severity,
    sorted_categories,
)
from orderline_device_monitor.domain.tickets import Ticket
from orderline_device_monitor.domain.work import BlockingAlarm, worst

_CATEGORY_PREFIX = "HEALTH_CATEGORY_"
_STATE_PREFIX = "HEALTH_STATE_"
_SEVERITY_PREFIX = "PERCEIVED_SEVERITY_"
_CONDITION_PREFIX = "DEVICE_CONDITION_"

# alarm_updated's change codes.
SEVERITY_CHANGED = "SEVERITY_CHANGED"
REPEATED = "REPEATED"
ACKNOWLEDGED = "ACKNOWLEDGED"
CORRELATED = "CORRELATED"
RELEASED = "RELEASED"


def category_to_proto(category: Category) -> device_pb2.HealthCategory.ValueType:
    return device_pb2.HealthCategory.Value(_CATEGORY_PREFIX + category.name)


def health_state_to_proto(state: HealthState) -> device_pb2.HealthState.ValueType:
    return device_pb2.HealthState.Value(_STATE_PREFIX + state.name)


def severity_to_proto(severity: Severity | None) -> device_pb2.PerceivedSeverity.ValueType:
    if severity is None:
        return device_pb2.PERCEIVED_SEVERITY_UNSPECIFIED
    return device_pb2.PerceivedSeverity.Value(_SEVERITY_PREFIX + severity.name)


def condition_to_proto(condition: Condition | None) -> device_pb2.DeviceCondition.ValueType:
    if condition is None:
        return device_pb2.DEVICE_CONDITION_UNSPECIFIED
    return device_pb2.DeviceCondition.Value(_CONDITION_PREFIX + condition.name)


def alarm_raised(
    device_id: str, raised: RaisedAlarm, device_model: str = ""
) -> device_events_pb2.AlarmRaised:
    category = raised.finding.category
    return device_events_pb2.AlarmRaised(
        device_model=device_model,
        alarm_id=raised.alarm_id,
        device_id=device_id,
        category=category_to_proto(category),
        detail=raised.finding.detail,
        perceived_severity=severity_to_proto(raised.finding.severity),
        probable_cause=probable_cause(category),
        is_root_cause=is_root(category),
        parent_alarm_id=raised.parent_id or "",
    )


def alarm_cleared(
    device_id: str, cleared: ClearedAlarm, *, cleared_by: str = "", reason: str = ""
) -> device_events_pb2.AlarmCleared:
    return device_events_pb2.AlarmCleared(
        alarm_id=cleared.alarm.alarm_id,
        device_id=device_id,
        category=category_to_proto(cleared.category),
        cleared_by=cleared_by,
        clear_reason=reason,
    )


def alarm_updated(
    device_id: str, category: Category, alarm: OpenAlarm, change: str, *, acknowledged_by: str = ""
) -> device_events_pb2.AlarmUpdated:
    return device_events_pb2.AlarmUpdated(
        alarm_id=alarm.alarm_id,
        device_id=device_id,
        category=category_to_proto(category),
        change=change,
        perceived_severity=severity_to_proto(alarm.severity),
        repeat_count=alarm.repeat_count,
        acknowledged_by=acknowledged_by,
        parent_alarm_id=alarm.parent_id or "",
    )


def alarm_acknowledged(record: AlarmRecord) -> device_events_pb2.AlarmUpdated:
    return device_events_pb2.AlarmUpdated(
        alarm_id=record.id,
        device_id=record.device_id,
        category=category_to_proto(record.category),
        change=ACKNOWLEDGED,
        perceived_severity=severity_to_proto(record.severity),
        repeat_count=record.repeat_count,
        acknowledged_by=record.acknowledged_by or "",
        parent_alarm_id=record.parent_alarm_id or "",
    )


def health_changed(
    device_id: str, abnormal: frozenset[Category], condition: Condition | None = None
) -> device_events_pb2.DeviceHealthChanged:
    state = HealthState.ABNORMAL if abnormal else HealthState.GOOD
    return device_events_pb2.DeviceHealthChanged(
        device_id=device_id,
        state=health_state_to_proto(state),
        abnormal=[category_to_proto(c) for c in sorted_categories(abnormal)],
        condition=condition_to_proto(condition),
    )


def ticket_opened(ticket: Ticket) -> device_events_pb2.TicketOpened:
    return device_events_pb2.TicketOpened(
        ticket_id=ticket.id,
        device_id=ticket.device_id,
        reason_code=ticket.reason_code,
        category=(
            category_to_proto(ticket.category)
            if ticket.category
            else device_pb2.HEALTH_CATEGORY_UNSPECIFIED
        ),
        alarm_id=ticket.alarm_id or "",
        opened_by=ticket.opened_by,
    )


def ticket_progressed(ticket: Ticket, by: str) -> device_events_pb2.TicketProgressed:
    return device_events_pb2.TicketProgressed(
        ticket_id=ticket.id, device_id=ticket.device_id, by=by
    )


def ticket_resolved(ticket: Ticket) -> device_events_pb2.TicketResolved:
    return device_events_pb2.TicketResolved(
        ticket_id=ticket.id,
        device_id=ticket.device_id,
        root_cause_code=ticket.root_cause_code or "",
        corrective_action_code=ticket.corrective_action_code or "",
        by=ticket.resolved_by or "",
    )


def ticket_closed(ticket: Ticket) -> device_events_pb2.TicketClosed:
    return device_events_pb2.TicketClosed(
        ticket_id=ticket.id,
        device_id=ticket.device_id,
        close_reason=ticket.close_reason or "",
        by=ticket.closed_by or "",
        root_cause_code=ticket.root_cause_code or "",
        corrective_action_code=ticket.corrective_action_code or "",
    )


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def device_abnormal(
    device_id: str,
    alarms: Iterable[BlockingAlarm],
    *,
    at: datetime,
    rules_version: str,
    condition: Condition | None,
    ticket_id: str = "",
    device_model: str = "",
) -> device_events_pb2.DeviceAbnormal:
    """The device turned unfit to work on (domain/work.py), with the alarms behind it."""
    blocking = list(alarms)
    return device_events_pb2.DeviceAbnormal(
        device_id=device_id,
        alarms=[
            device_events_pb2.BlockingAlarm(
                alarm_id=a.alarm_id,
                category=category_to_proto(a.category),
                perceived_severity=severity_to_proto(a.severity),
            )
            for a in blocking
        ],
        perceived_severity=severity_to_proto(worst(blocking)),
        changed_at=_timestamp(at),
        rules_version=rules_version,
        condition=condition_to_proto(condition),
        ticket_id=ticket_id,
        device_model=device_model,
    )


def device_recovered(
    device_id: str,
    cleared_alarm_ids: Iterable[str],
    *,
    at: datetime,
    rules_version: str,
    condition: Condition | None,
    ticket_id: str = "",
) -> device_events_pb2.DeviceRecovered:
    """The device is fit to work on again."""
    return device_events_pb2.DeviceRecovered(
        device_id=device_id,
        cleared_alarm_ids=list(cleared_alarm_ids),
        changed_at=_timestamp(at),
        rules_version=rules_version,
        condition=condition_to_proto(condition),
        ticket_id=ticket_id,
    )
