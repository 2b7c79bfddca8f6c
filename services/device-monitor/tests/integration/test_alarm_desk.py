"""ListAlarms' filters, AcknowledgeAlarm and ClearAlarm over real gRPC: success and every error
path, with the events they publish."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from device_monitor_harness import DeviceMonitor, bearer, field_violations, sample

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2


async def ack(monitor: DeviceMonitor, alarm_id: str, token: str = "dev-maintenance") -> Any:
    return await monitor.health_stub.AcknowledgeAlarm(
        device_pb2.AcknowledgeAlarmRequest(alarm_id=alarm_id), metadata=bearer(token), timeout=5
    )


async def clear(
    monitor: DeviceMonitor, alarm_id: str, reason: str, token: str = "dev-maintenance"
) -> Any:
    return await monitor.health_stub.ClearAlarm(
        device_pb2.ClearAlarmRequest(alarm_id=alarm_id, reason=reason),
        metadata=bearer(token),
        timeout=5,
    )


async def line_and_safety_alarms(monitor: DeviceMonitor) -> tuple[Any, Any]:
    await monitor.stream([sample("CPE-0101")], [sample("CPE-0101", line_up=False)])
    await monitor.stream([sample("CPE-0101", line_up=False, safety_ok=False)])
    reply = await monitor.alarms(device_id="CPE-0101", only_open=True)
    by_category = {a.category: a for a in reply.alarms}
    return (
        by_category[device_pb2.HEALTH_CATEGORY_LINE],
        by_category[device_pb2.HEALTH_CATEGORY_SAFETY],
    )


async def test_alarms_carry_the_tmf642_shape_and_the_root_suppresses_its_children(
    monitor: DeviceMonitor,
) -> None:
    line, safety = await line_and_safety_alarms(monitor)
    assert safety.is_root_cause and safety.probable_cause == "equipmentMalfunction"
    assert safety.perceived_severity == device_pb2.PERCEIVED_SEVERITY_CRITICAL
    assert line.parent_alarm_id == safety.id and line.suppressed
    assert line.state == device_pb2.ALARM_STATE_UPDATED  # correlated after it was raised
    assert line.probable_cause == "lossOfSignal"

    fitness = await monitor.fitness("CPE-0101")
    assert not fitness.fit
    root = next(d for d in fitness.details if d.code == "ABNORMAL_SAFETY")
    assert set(root.alarm_ids) == {safety.id, line.id}
    assert " | " in root.text
    health = await monitor.health("CPE-0101")
    # A safety failure opens a maintenance ticket at once (test_tickets.py).
    assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE

    events = await monitor.wait_for_event("device.alarm_updated")
    updated = [e for e in events if e.type == "device.alarm_updated"]
    payload = device_events_pb2.AlarmUpdated()
    assert updated[0].payload.Unpack(payload)
    assert payload.change == "CORRELATED" and payload.parent_alarm_id == safety.id


async def test_list_alarms_filters_and_pages(monitor: DeviceMonitor) -> None:
    line, safety = await line_and_safety_alarms(monitor)
    critical = await monitor.alarms(severities=[device_pb2.PERCEIVED_SEVERITY_CRITICAL])
    assert safety.id in [a.id for a in critical.alarms]
    assert {a.perceived_severity for a in critical.alarms} == {
        device_pb2.PERCEIVED_SEVERITY_CRITICAL
    }
    none = await monitor.alarms(severities=[device_pb2.PERCEIVED_SEVERITY_WARNING])
    assert none.alarms == []
    by_category = await monitor.alarms(categories=[device_pb2.HEALTH_CATEGORY_LINE])
    assert [a.id for a in by_category.alarms] == [line.id]
    assert len((await monitor.alarms(acknowledged=False)).alarms) == 2
    await ack(monitor, line.id)
    assert [a.id for a in (await monitor.alarms(acknowledged=True)).alarms] == [line.id]
    assert (await monitor.alarms(states=[device_pb2.ALARM_STATE_CLEARED])).alarms == []
    first = await monitor.alarms(page_size=1, device_id="CPE-0101")
    assert len(first.alarms) == 1 and first.next_page_token
    second = await monitor.alarms(
        page_size=1, device_id="CPE-0101", page_token=first.next_page_token
    )
    assert [a.id for a in second.alarms] != [a.id for a in first.alarms]
    # A token is bound to its filters.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.alarms(page_size=1, page_token=first.next_page_token, acknowledged=True)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["page_token"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.alarms(severities=[99], categories=[0], states=[42])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_violations(caught.value)) == [
        "categories[0]",
        "severities[0]",
        "states[0]",
    ]


async def test_acknowledge_records_who_and_when_once(monitor_sqlite: DeviceMonitor) -> None:
    monitor = monitor_sqlite
    line, _ = await line_and_safety_alarms(monitor)
    first = (await ack(monitor, line.id, "dev-maintenance")).alarm
    assert first.acknowledged and first.acknowledged_by and first.HasField("acknowledged_at")
    again = (await ack(monitor, line.id, "dev-engineer")).alarm
    assert again.acknowledged_by == first.acknowledged_by  # the first acknowledgement stands
    events = await monitor.wait_for_event("device.alarm_updated", 2)
    changes = []
    for e in events:
        if e.type == "device.alarm_updated":
            p = device_events_pb2.AlarmUpdated()
            assert e.payload.Unpack(p)
            changes.append(p.change)
    assert changes.count("ACKNOWLEDGED") == 1


async def test_clear_needs_a_reason_and_releases_the_roots_children(
    monitor_sqlite: DeviceMonitor,
) -> None:
    monitor = monitor_sqlite
    line, safety = await line_and_safety_alarms(monitor)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clear(monitor, safety.id, "  ")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["reason"]

    cleared = (await clear(monitor, safety.id, "interlock replaced on site")).alarm
    assert cleared.state == device_pb2.ALARM_STATE_CLEARED
    assert cleared.cleared_by and cleared.clear_reason == "interlock replaced on site"
    reply = await monitor.alarms(device_id="CPE-0101", only_open=True)
    (still,) = reply.alarms
    assert still.id == line.id and not still.suppressed and still.parent_alarm_id == safety.id

    events = await monitor.wait_for_event("device.alarm_cleared")
    payload = device_events_pb2.AlarmCleared()
    assert next(e for e in events if e.type == "device.alarm_cleared").payload.Unpack(payload)
    assert payload.alarm_id == safety.id and payload.clear_reason == "interlock replaced on site"

    # Clearing a cleared alarm, or acknowledging one, is FAILED_PRECONDITION.
    for call in (clear(monitor, safety.id, "again"), ack(monitor, safety.id)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_unknown_or_malformed_alarm_ids_and_roles(monitor_sqlite: DeviceMonitor) -> None:
    monitor = monitor_sqlite
    for call in (ack(monitor, "0190f0e0-0000-7000-8000-000000000000"), clear(monitor, "x", "r")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clear(monitor, "", "")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_violations(caught.value)) == ["alarm_id", "reason"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ack(monitor, "x" * 37)
    assert field_violations(caught.value) == ["alarm_id"]
    # A clerk reads alarms but does not own them; only maintenance clears.
    for call in (ack(monitor, "x", "dev-clerk"), clear(monitor, "x", "r", "dev-engineer")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
