"""Between protobuf messages and domain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline_device_monitor.app.events import (
    category_to_proto,
    condition_to_proto,
    health_state_to_proto,
    severity_to_proto,
)
from orderline_device_monitor.app.records import AlarmRecord, AnomalyRecord
from orderline_device_monitor.domain.alarms import probable_cause
from orderline_device_monitor.domain.health import Fitness, HealthView, Reading, new_reading
from orderline_device_monitor.domain.tickets import Ticket, TicketState
from orderline_runtime.errors import Violations

# google.protobuf.Timestamp's documented range: 0001-01-01 to 9999-12-31, nanos 0..999999999.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def readings_from_proto(samples: Sequence[device_pb2.TelemetrySample]) -> list[Reading]:
    """Samples to readings; a Timestamp outside its documented range is a malformed message
    (a client bug, not a device reading), so the stream is refused naming each such field.

    A fleet samples its devices at the same moment: each distinct time of the batch is checked
    and turned into a datetime once, not once per sample (that took about a quarter of the
    conversion)."""
    problems = Violations()
    times: dict[tuple[int, int], datetime | None] = {}
    readings: list[Reading] = []
    for i, sample in enumerate(samples):
        at: datetime | None = None
        if sample.HasField("observed_at"):
            stamp = sample.observed_at
            key = (stamp.seconds, stamp.nanos)
            if key in times:
                at = times[key]
            else:
                at = times[key] = _as_datetime(key) if _valid_timestamp(key) else None
            if at is None:
                problems.add(f"samples[{i}].observed_at", "not a valid timestamp")
                continue
        readings.append(_reading(sample, at))
    problems.raise_if_any()
    return readings


def _valid_timestamp(key: tuple[int, int]) -> bool:
    return _MIN_SECONDS <= key[0] <= _MAX_SECONDS and 0 <= key[1] <= 999_999_999


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _as_datetime(key: tuple[int, int]) -> datetime:
    """What Timestamp.ToDatetime(tzinfo=UTC) gives (nanoseconds cut to microseconds)."""
    return _EPOCH + timedelta(seconds=key[0], microseconds=key[1] // 1000)


def reading_from_proto(sample: device_pb2.TelemetrySample) -> Reading:
    """One sample (its time assumed valid: readings_from_proto checks a stream's)."""
    at = None
    if sample.HasField("observed_at"):
        at = _as_datetime((sample.observed_at.seconds, sample.observed_at.nanos))
    return _reading(sample, at)


def _reading(sample: device_pb2.TelemetrySample, observed_at: datetime | None) -> Reading:
    return new_reading(
        sample.device_id,
        observed_at,
        sample.noise_db,
        sample.vibration_mm_s,
        sample.display_ok,
        sample.key_latency_ms,
        sample.line_error_rate,
        sample.line_up,
        sample.cpu_pct,
        sample.memory_pct,
        sample.disk_pct,
        sample.temperature_c,
        sample.safety_ok,
        sample.access_node_id,
        sample.device_model,
    )


def health_to_proto(view: HealthView) -> device_pb2.DeviceHealth:
    msg = device_pb2.DeviceHealth(
        device_id=view.device_id,
        state=health_state_to_proto(view.state),
        abnormal=[category_to_proto(c) for c in view.abnormal],
        open_alarm_id=view.open_alarm_id,
        condition=condition_to_proto(view.condition),
        failing=[
            device_pb2.FailingCategory(
                category=category_to_proto(f.category),
                severity=severity_to_proto(f.severity),
                phase=device_pb2.FailingPhase.Value("FAILING_PHASE_" + f.status.upper()),
            )
            for f in view.failing
        ],
    )
    if view.last_seen is not None:
        msg.last_seen.FromDatetime(view.last_seen)
    return msg


def fitness_to_proto(result: Fitness) -> device_pb2.CheckFitnessResponse:
    return device_pb2.CheckFitnessResponse(
        fit=result.fit,
        health=health_to_proto(result.health),
        reasons=list(result.reasons),
        alarm_id=result.alarm_id,
        details=[
            device_pb2.FitnessReason(
                code=d.code,
                category=(
                    category_to_proto(d.category)
                    if d.category
                    else device_pb2.HEALTH_CATEGORY_UNSPECIFIED
                ),
                alarm_ids=list(d.alarm_ids),
                text=d.text,
            )
            for d in result.details
        ],
    )


def alarm_to_proto(alarm: AlarmRecord) -> device_pb2.Alarm:
    msg = device_pb2.Alarm(
        id=alarm.id,
        device_id=alarm.device_id,
        category=category_to_proto(alarm.category),
        state=_alarm_state(alarm),
        detail=alarm.detail,
        perceived_severity=severity_to_proto(alarm.severity),
        # Alarms from before probable causes were recorded get their category's.
        probable_cause=alarm.probable_cause or probable_cause(alarm.category),
        repeat_count=alarm.repeat_count,
        acknowledged=alarm.acknowledged_by is not None,
        acknowledged_by=alarm.acknowledged_by or "",
        cleared_by=alarm.cleared_by or "",
        clear_reason=alarm.clear_reason or "",
        is_root_cause=alarm.is_root_cause,
        parent_alarm_id=alarm.parent_alarm_id or "",
        suppressed=alarm.suppressed,
        rules_version=alarm.rules_version or "",
        alarmed_object_type=alarm.alarmed_object_type,
    )
    msg.raised_at.FromDatetime(alarm.raised_at)
    if alarm.cleared_at is not None:
        msg.cleared_at.FromDatetime(alarm.cleared_at)
    if alarm.acknowledged_at is not None:
        msg.acknowledged_at.FromDatetime(alarm.acknowledged_at)
    if alarm.updated_at is not None:
        msg.updated_at.FromDatetime(alarm.updated_at)
    return msg


def _alarm_state(alarm: AlarmRecord) -> device_pb2.AlarmState.ValueType:
    """TMF642: raised, updated (open and changed since), cleared."""
    if not alarm.is_open:
        return device_pb2.ALARM_STATE_CLEARED
    if alarm.updated_at is not None:
        return device_pb2.ALARM_STATE_UPDATED
    return device_pb2.ALARM_STATE_RAISED


_TICKET_STATES: dict[TicketState, device_pb2.TicketState.ValueType] = {
    TicketState.ACKNOWLEDGED: device_pb2.TICKET_STATE_ACKNOWLEDGED,
    TicketState.IN_PROGRESS: device_pb2.TICKET_STATE_IN_PROGRESS,
    TicketState.RESOLVED: device_pb2.TICKET_STATE_RESOLVED,
    TicketState.CLOSED: device_pb2.TICKET_STATE_CLOSED,
}
TICKET_STATES_FROM_PROTO: dict[int, TicketState] = {v: k for k, v in _TICKET_STATES.items()}


def _stamp(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def _actions_to_proto(actions: Sequence[Mapping[str, Any]]) -> list[device_pb2.FirstLineAction]:
    result = []
    for a in actions:
        msg = device_pb2.FirstLineAction(
            action=str(a.get("action", "")),
            outcome=str(a.get("outcome", "")),
            detail=str(a.get("detail", "")),
        )
        if a.get("at"):
            msg.at.FromDatetime(datetime.fromisoformat(str(a["at"])))
        result.append(msg)
    return result


def ticket_to_proto(ticket: Ticket) -> device_pb2.Ticket:
    msg = device_pb2.Ticket(
        id=ticket.id,
        device_id=ticket.device_id,
        state=_TICKET_STATES[ticket.state],
        reason_code=ticket.reason_code,
        category=(
            category_to_proto(ticket.category)
            if ticket.category
            else device_pb2.HEALTH_CATEGORY_UNSPECIFIED
        ),
        description=ticket.description,
        order_id=ticket.order_id or "",
        alarm_id=ticket.alarm_id or "",
        anomaly_ids=list(ticket.anomaly_ids),
        opened_by=ticket.opened_by,
        root_cause_code=ticket.root_cause_code or "",
        corrective_action_code=ticket.corrective_action_code or "",
        resolution_note=ticket.resolution_note or "",
        resolved_by=ticket.resolved_by or "",
        closed_by=ticket.closed_by or "",
        close_reason=ticket.close_reason or "",
        actions_tried=_actions_to_proto(ticket.actions_tried),
    )
    _stamp(msg.opened_at, ticket.opened_at)
    _stamp(msg.updated_at, ticket.updated_at)
    _stamp(msg.resolved_at, ticket.resolved_at)
    _stamp(msg.closed_at, ticket.closed_at)
    for note in ticket.history:
        step = msg.history.add(by=note.by, state=_TICKET_STATES[note.state], text=note.text)
        step.at.FromDatetime(note.at)
    return msg


def _sample_to_proto(data: Mapping[str, Any]) -> device_pb2.TelemetrySample:
    values = {k: v for k, v in data.items() if k in _SAMPLE_FIELDS}
    msg = device_pb2.TelemetrySample(device_id=str(data.get("device_id", "")), **values)
    if data.get("observed_at"):
        msg.observed_at.FromDatetime(datetime.fromisoformat(str(data["observed_at"])))
    return msg


_SAMPLE_FIELDS = frozenset(
    f.name
    for f in device_pb2.TelemetrySample.DESCRIPTOR.fields
    if f.name not in ("device_id", "observed_at")
)


def anomaly_to_proto(anomaly: AnomalyRecord) -> device_pb2.Anomaly:
    msg = device_pb2.Anomaly(
        id=anomaly.id,
        alarm_id=anomaly.alarm_id,
        device_id=anomaly.device_id,
        device_model=anomaly.device_model or "",
        category=category_to_proto(anomaly.category),
        offending_metrics=sorted(anomaly.readings),
        samples=[_sample_to_proto(s) for s in anomaly.samples],
        onset_index=anomaly.onset_index or 0,
        actions_tried=_actions_to_proto(anomaly.actions),
        ticket_id=anomaly.ticket_id or "",
        root_cause_code=anomaly.root_cause_code or "",
        corrective_action_code=anomaly.corrective_action_code or "",
        resolution_note=anomaly.resolution_note or "",
        order_id=anomaly.order_id or "",
        detail=anomaly.detail or "",
    )
    _stamp(msg.first_seen_at, anomaly.first_seen_at)
    _stamp(msg.last_seen_at, anomaly.last_seen_at)
    _stamp(msg.closed_at, anomaly.closed_at)
    return msg
