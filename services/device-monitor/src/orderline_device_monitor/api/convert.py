"""Between protobuf messages and domain values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline_device_monitor.app.events import category_to_proto, health_state_to_proto
from orderline_device_monitor.app.records import AlarmRecord
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
    )


def alarm_to_proto(alarm: AlarmRecord) -> device_pb2.Alarm:
    msg = device_pb2.Alarm(
        id=alarm.id,
        device_id=alarm.device_id,
        category=category_to_proto(alarm.category),
        state=device_pb2.ALARM_STATE_RAISED if alarm.is_open else device_pb2.ALARM_STATE_CLEARED,
        detail=alarm.detail,
    )
    msg.raised_at.FromDatetime(alarm.raised_at)
    if alarm.cleared_at is not None:
        msg.cleared_at.FromDatetime(alarm.cleared_at)
    return msg
