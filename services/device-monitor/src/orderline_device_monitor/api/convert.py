"""Between protobuf messages and domain values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline_device_monitor.app.events import (
    category_to_proto,
    condition_to_proto,
    health_state_to_proto,
    severity_to_proto,
)
from orderline_device_monitor.app.records import AlarmRecord
from orderline_device_monitor.domain.alarms import probable_cause
from orderline_device_monitor.domain.health import Fitness, HealthView, Reading
from orderline_runtime.errors import Violations

# google.protobuf.Timestamp's documented range: 0001-01-01 to 9999-12-31, nanos 0..999999999.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def readings_from_proto(samples: Sequence[device_pb2.TelemetrySample]) -> list[Reading]:
    """Samples to readings; a Timestamp outside its documented range is a malformed message
    (a client bug, not a device reading), so the stream is refused naming each such field."""
    problems = Violations()
    for i, sample in enumerate(samples):
        if sample.HasField("observed_at") and not _valid_timestamp(sample.observed_at):
            problems.add(f"samples[{i}].observed_at", "not a valid timestamp")
    problems.raise_if_any()
    return [reading_from_proto(s) for s in samples]


def _valid_timestamp(ts: Timestamp) -> bool:
    return _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos <= 999_999_999


def reading_from_proto(sample: device_pb2.TelemetrySample) -> Reading:
    return Reading(
        device_id=sample.device_id,
        observed_at=(
            sample.observed_at.ToDatetime(tzinfo=UTC) if sample.HasField("observed_at") else None
        ),
        noise_db=sample.noise_db,
        vibration_mm_s=sample.vibration_mm_s,
        display_ok=sample.display_ok,
        key_latency_ms=sample.key_latency_ms,
        line_error_rate=sample.line_error_rate,
        line_up=sample.line_up,
        cpu_pct=sample.cpu_pct,
        memory_pct=sample.memory_pct,
        disk_pct=sample.disk_pct,
        temperature_c=sample.temperature_c,
        safety_ok=sample.safety_ok,
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
