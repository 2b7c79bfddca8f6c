"""device.* event payloads, and the mapping of domain values to their protobuf enums."""

from __future__ import annotations

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline_device_monitor.domain.health import (
    Category,
    ClearedAlarm,
    HealthState,
    RaisedAlarm,
    sorted_categories,
)

_CATEGORY_PREFIX = "HEALTH_CATEGORY_"
_STATE_PREFIX = "HEALTH_STATE_"


def category_to_proto(category: Category) -> device_pb2.HealthCategory.ValueType:
    return device_pb2.HealthCategory.Value(_CATEGORY_PREFIX + category.name)


def health_state_to_proto(state: HealthState) -> device_pb2.HealthState.ValueType:
    return device_pb2.HealthState.Value(_STATE_PREFIX + state.name)


def alarm_raised(device_id: str, raised: RaisedAlarm) -> device_events_pb2.AlarmRaised:
    return device_events_pb2.AlarmRaised(
        alarm_id=raised.alarm_id,
        device_id=device_id,
        category=category_to_proto(raised.finding.category),
        detail=raised.finding.detail,
    )


def alarm_cleared(device_id: str, cleared: ClearedAlarm) -> device_events_pb2.AlarmCleared:
    return device_events_pb2.AlarmCleared(
        alarm_id=cleared.alarm.alarm_id,
        device_id=device_id,
        category=category_to_proto(cleared.category),
    )


def health_changed(
    device_id: str, abnormal: frozenset[Category]
) -> device_events_pb2.DeviceHealthChanged:
    state = HealthState.ABNORMAL if abnormal else HealthState.GOOD
    return device_events_pb2.DeviceHealthChanged(
        device_id=device_id,
        state=health_state_to_proto(state),
        abnormal=[category_to_proto(c) for c in sorted_categories(abnormal)],
    )
