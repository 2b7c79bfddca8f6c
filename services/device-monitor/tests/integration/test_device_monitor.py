"""device-monitor end to end in one process: telemetry over a real gRPC client stream, health and
fitness answers, alarms and their events on the real DEVICE stream, job_started from the real
PROVISIONING stream, restart, bad input and auth."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from device_monitor_harness import (
    DeviceMonitor,
    Launcher,
    ago,
    eventually,
    field_violations,
    sample,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2, provisioning_events_pb2
from orderline_device_monitor.adapters import repository as repo
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.adapters.tables import alarms, anomalies, fitness_checks, metadata
from orderline_device_monitor.domain.health import Category
from orderline_runtime.ids import new_id
from orderline_runtime.telemetry import ORDER_ID

GOOD = device_pb2.HEALTH_STATE_GOOD
ABNORMAL = device_pb2.HEALTH_STATE_ABNORMAL
UNKNOWN = device_pb2.HEALTH_STATE_UNKNOWN
THERMAL = device_pb2.HEALTH_CATEGORY_THERMAL


def payload(envelope: Any, cls: type[Any]) -> Any:
    msg = cls()
    assert envelope.payload.Unpack(msg)
    return msg


async def test_good_telemetry_makes_a_device_good_and_fit(monitor: DeviceMonitor) -> None:
    accepted = await monitor.stream(
        [sample("CPE-0001"), sample("CPE 0002"), sample("CPE-0003", temperature_c=math.nan)],
        [sample("CPE-0001")],
    )
    assert accepted == 2  # the malformed id and the NaN reading are skipped, not fatal

    health = await monitor.health("CPE-0001")
    assert health.state == GOOD
    assert list(health.abnormal) == []
    assert health.HasField("last_seen")
    assert health.open_alarm_id == ""

    reply = await monitor.fitness("CPE-0001")
    assert reply.fit
    assert list(reply.reasons) == []
    assert reply.health.state == GOOD

    # Steady good telemetry writes no alarm and publishes nothing.
    assert await monitor.count(alarms) == 0
    assert await monitor.count(metadata.tables["outbox"]) == 0


async def test_device_that_never_sent_telemetry_is_not_found_and_not_fit(
    monitor: DeviceMonitor,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.health("CPE-9999")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    # A pre-check may come before the device's first sample: not fit yet, for lack of telemetry.
    reply = await monitor.fitness("CPE-9999", order_id="order-1")
    assert not reply.fit
    assert reply.health.state == UNKNOWN
    assert list(reply.reasons) == ["NO_RECENT_TELEMETRY"]
    assert await monitor.count(fitness_checks) == 1


async def test_out_of_range_sample_raises_one_alarm_until_recovery(
    monitor: DeviceMonitor,
) -> None:
    await monitor.stream([sample("CPE-0007", ago(10)), sample("CPE-0008", ago(10))])
    # Past the limit for the thermal rule's pending period (2 s of sample time).
    await monitor.stream(
        [sample("CPE-0007", ago(3), temperature_c=88.5), sample("CPE-0008", ago(3))],
        [sample("CPE-0007", temperature_c=88.5), sample("CPE-0008")],
    )

    health = await monitor.health("CPE-0007")
    assert health.state == ABNORMAL
    assert list(health.abnormal) == [THERMAL]
    alarm_id = health.open_alarm_id
    assert alarm_id

    reply = await monitor.fitness("CPE-0007")
    assert not reply.fit
    assert list(reply.reasons) == ["ABNORMAL_THERMAL"]
    assert reply.alarm_id == alarm_id
    assert (await monitor.fitness("CPE-0008")).fit

    events = await monitor.wait_for_event("device.alarm_raised")
    raised = [e for e in events if e.type == "device.alarm_raised"]
    assert len(raised) == 1
    assert raised[0].device_id == "CPE-0007"
    assert raised[0].producer == "device-monitor"
    body = payload(raised[0], device_events_pb2.AlarmRaised)
    assert (body.alarm_id, body.device_id, body.category) == (alarm_id, "CPE-0007", THERMAL)
    # The detail names the threshold of the severity it matched (critical above 85).
    assert "temperature_c 88.5 > 85" in body.detail

    # The same abnormal reading again and again: no second alarm.
    await monitor.stream(
        [sample("CPE-0007", temperature_c=88.5)], [sample("CPE-0007", temperature_c=91.0)]
    )
    listed = await monitor.alarms(device_id="CPE-0007")
    assert [a.id for a in listed.alarms] == [alarm_id]
    assert listed.alarms[0].state == device_pb2.ALARM_STATE_RAISED

    # Recovery clears it.
    await monitor.stream([sample("CPE-0007")])
    assert (await monitor.health("CPE-0007")).state == GOOD
    assert (await monitor.fitness("CPE-0007")).fit

    events = await monitor.wait_for_event("device.alarm_cleared")
    assert [e.type for e in events] == [
        "device.alarm_raised",
        "device.health_changed",
        "device.abnormal",
        "device.alarm_cleared",
        "device.health_changed",
        "device.recovered",
    ]
    cleared = payload(events[3], device_events_pb2.AlarmCleared)
    assert (cleared.alarm_id, cleared.category) == (alarm_id, THERMAL)
    became_abnormal = payload(events[1], device_events_pb2.DeviceHealthChanged)
    assert (became_abnormal.state, list(became_abnormal.abnormal)) == (ABNORMAL, [THERMAL])
    recovered = payload(events[4], device_events_pb2.DeviceHealthChanged)
    assert (recovered.state, list(recovered.abnormal)) == (GOOD, [])
    # Work stops on the device, naming the alarm, and may go on again: once each.
    stop = payload(events[2], device_events_pb2.DeviceAbnormal)
    assert stop.device_id == "CPE-0007" and events[2].device_id == "CPE-0007"
    assert [(a.alarm_id, a.category) for a in stop.alarms] == [(alarm_id, THERMAL)]
    assert stop.perceived_severity == device_pb2.PERCEIVED_SEVERITY_CRITICAL
    assert stop.condition == device_pb2.DEVICE_CONDITION_ABNORMAL
    assert stop.rules_version and stop.changed_at.seconds > 0
    go_on = payload(events[5], device_events_pb2.DeviceRecovered)
    assert (go_on.device_id, list(go_on.cleared_alarm_ids)) == ("CPE-0007", [alarm_id])
    assert go_on.condition == device_pb2.DEVICE_CONDITION_HEALTHY
    assert go_on.rules_version == stop.rules_version

    assert list((await monitor.alarms(only_open=True)).alarms) == []
    [closed] = (await monitor.alarms(device_id="CPE-0007")).alarms
    assert closed.state == device_pb2.ALARM_STATE_CLEARED
    assert closed.HasField("cleared_at")


async def test_job_started_names_the_order_in_later_alarms(
    launch: Launcher, db_url: str, span_exporter: InMemorySpanExporter
) -> None:
    # A long heartbeat interval: the samples are dated back (for the pending period) and the
    # device must not look silent however slowly the events go round.
    async with launch(db_url, telemetry_stale_seconds=600) as monitor:
        await _job_started_names_the_order_in_later_alarms(monitor, span_exporter)


async def _job_started_names_the_order_in_later_alarms(
    monitor: DeviceMonitor, span_exporter: InMemorySpanExporter
) -> None:
    order_id, job_id, device_id = new_id(), new_id(), "CPE-0042"
    await monitor.stream([sample(device_id, ago(4))])
    started = provisioning_events_pb2.JobStarted(
        job_id=job_id, order_id=order_id, device_id=device_id
    )
    event_id = await monitor.publish(
        "provisioning.job_started",
        started,
        producer="provisioning",
        order_id=order_id,
        device_id=device_id,
    )
    # A redelivery under another message id changes nothing (the inbox has it).
    await monitor.publish(
        "provisioning.job_started",
        started,
        producer="provisioning",
        order_id=order_id,
        device_id=device_id,
        event_id=event_id,
        msg_id=new_id(),
    )

    async def usage() -> repo.Usage | None:
        async with monitor.service.db.reading() as session:
            return await DeviceRepository(session).usage_of(device_id)

    recorded = await eventually(usage, lambda u: u is not None, "job_started to be recorded")
    assert recorded is not None
    assert (recorded.order_id, recorded.job_id) == (order_id, job_id)

    # Provisioning's pre-check: the order is on the server span and on the audit row.
    span_exporter.clear()
    assert (await monitor.fitness(device_id, order_id=order_id)).fit
    check_span = next(
        s for s in span_exporter.get_finished_spans() if s.name.endswith("/CheckFitness")
    )
    assert (check_span.attributes or {}).get(ORDER_ID) == order_id
    assert await monitor.count(fitness_checks) == 1

    # Display has no pending period; thermal needs the heat to last 2 s.
    await monitor.stream(
        [sample(device_id, ago(3), temperature_c=90.0, display_ok=False)],
        [sample(device_id, temperature_c=90.0, display_ok=False)],
    )

    async with monitor.service.db.reading() as session:
        records = await DeviceRepository(session).anomalies_of_device(device_id)
    assert {r.category for r in records} == {Category.DISPLAY, Category.THERMAL}
    for record in records:
        assert (record.order_id, record.job_id) == (order_id, job_id)
    thermal = next(r for r in records if r.category is Category.THERMAL)
    assert dict(thermal.readings) == {"temperature_c": 90.0}
    assert thermal.snapshot["temperature_c"] == 90.0
    assert thermal.snapshot["display_ok"] is False

    events = await monitor.wait_for_event("device.alarm_raised", count=2)
    for envelope in events:
        assert envelope.order_id == order_id
        assert envelope.device_id == device_id
    change_span = next(
        s for s in span_exporter.get_finished_spans() if s.name.endswith("record health change")
    )
    assert (change_span.attributes or {}).get(ORDER_ID) == order_id
    assert await monitor.count(anomalies) == 2


async def test_open_alarms_are_restored_after_a_restart(launch: Launcher, db_url: str) -> None:
    async with launch(db_url) as first:
        await first.stream([sample("CPE-0100", safety_ok=False), sample("CPE-0101")])
        alarm_id = (await first.health("CPE-0100")).open_alarm_id
        assert alarm_id

    async with launch(db_url) as second:
        health = await second.health("CPE-0100")
        assert health.state == ABNORMAL
        assert health.open_alarm_id == alarm_id
        assert list(health.abnormal) == [device_pb2.HEALTH_CATEGORY_SAFETY]
        # Known before the restart but silent since: UNKNOWN, not NOT_FOUND.
        assert (await second.health("CPE-0101")).state == UNKNOWN

        await second.stream([sample("CPE-0100", safety_ok=False)])
        assert [a.id for a in (await second.alarms(device_id="CPE-0100")).alarms] == [alarm_id]

        await second.stream([sample("CPE-0100")])
        assert (await second.health("CPE-0100")).state == GOOD
        events = await second.wait_for_event("device.alarm_cleared")
        assert sum(e.type == "device.alarm_raised" for e in events) == 1


async def test_list_alarms_pages_newest_first(monitor: DeviceMonitor) -> None:
    await monitor.stream([sample("CPE-0201", display_ok=False, line_up=False)])
    # Resources, input and mechanical have pending periods: the faults last past them.
    await monitor.stream(
        [sample("CPE-0202", ago(3), cpu_pct=99.0)], [sample("CPE-0202", cpu_pct=99.0)]
    )
    slow_and_noisy = {"key_latency_ms": 900.0, "noise_db": 90.0}
    await monitor.stream(
        [sample("CPE-0203", ago(3), **slow_and_noisy)], [sample("CPE-0203", **slow_and_noisy)]
    )
    await monitor.stream([sample("CPE-0202")])  # clears one

    seen: list[Any] = []
    token = ""
    pages = 0
    while True:
        page = await monitor.alarms(page_size=2, page_token=token)
        seen.extend(page.alarms)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert len(seen) == 5
    assert [a.id for a in seen] == sorted((a.id for a in seen), reverse=True)
    assert seen[0].device_id == "CPE-0203"

    open_alarms = (await monitor.alarms(only_open=True, page_size=500)).alarms
    assert len(open_alarms) == 4
    assert "CPE-0202" not in {a.device_id for a in open_alarms}
    one_device = (await monitor.alarms(device_id="CPE-0201")).alarms
    assert {a.category for a in one_device} == {
        device_pb2.HEALTH_CATEGORY_DISPLAY,
        device_pb2.HEALTH_CATEGORY_LINE,
    }


async def test_device_without_recent_telemetry_is_unknown_and_unfit(
    launch: Launcher, tmp_path: Any
) -> None:
    async with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'stale.db'}", telemetry_stale_seconds=0.3
    ) as monitor:
        await monitor.stream([sample("CPE-0300")])
        await eventually(
            lambda: monitor.health("CPE-0300"), lambda h: h.state == UNKNOWN, "UNKNOWN"
        )
        reply = await monitor.fitness("CPE-0300")
        assert not reply.fit
        assert list(reply.reasons) == ["NO_RECENT_TELEMETRY"]
        assert reply.health.state == UNKNOWN


async def test_bad_requests_name_every_bad_field(monitor_sqlite: DeviceMonitor) -> None:
    monitor = monitor_sqlite
    for device_id in ("", "CPE 0001", "x" * 65):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await monitor.health(device_id)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == ["device_id"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.fitness("", order_id="o" * 65)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["device_id", "order_id"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.alarms(device_id="bad id", page_size=501, page_token="not-a-token")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["device_id", "page_size", "page_token"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.alarms(page_size=-1)
    assert field_violations(caught.value) == ["page_size"]

    # A token is only good for the filters it was issued with.
    await monitor.stream([sample("CPE-0400", safety_ok=False, display_ok=False)])
    token = (await monitor.alarms(page_size=1)).next_page_token
    assert token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.alarms(page_size=1, page_token=token, only_open=True)
    assert field_violations(caught.value) == ["page_token"]


async def test_a_malformed_sample_timestamp_is_invalid_argument_naming_the_sample(
    monitor_sqlite: DeviceMonitor,
) -> None:
    bad = sample("CPE-0500")
    bad.observed_at.nanos = -1  # outside google.protobuf.Timestamp's range
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor_sqlite.stream([sample("CPE-0500"), bad])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["samples[1].observed_at"]


async def test_callers_without_token_or_role_are_refused(monitor_sqlite: DeviceMonitor) -> None:
    monitor = monitor_sqlite
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.health("CPE-0001", token=None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.stream([sample("CPE-0001")], token=None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.stream([sample("CPE-0001")], token="dev-clerk")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.fitness("CPE-0001", token="dev-reviewer")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Nothing was ingested by the refused streams.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.health("CPE-0001", token="dev-maintenance")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_alarm_opened_behind_its_back_is_adopted_not_duplicated(
    monitor: DeviceMonitor,
) -> None:
    """Another writer (a second replica) opened the alarm first: the database refuses a second
    open alarm for the device and category, the batch is refused as UNAVAILABLE, and the resent
    batch finds the existing alarm."""
    await monitor.stream(
        [sample("CPE-0500", ago(10))], [sample("CPE-0500", ago(3), temperature_c=80.0)]
    )
    foreign_id = new_id()
    async with monitor.service.db.transaction() as session:
        await DeviceRepository(session).raise_alarm(
            alarm_id=foreign_id,
            device_id="CPE-0500",
            category=Category.THERMAL,
            detail="temperature_c 80 > 75",
            raised_at=datetime.now(UTC),
            order_id=None,
        )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.stream([sample("CPE-0500", temperature_c=80.0)])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    assert await monitor.stream([sample("CPE-0500", temperature_c=80.0)]) == 1
    health = await monitor.health("CPE-0500")
    assert (health.state, health.open_alarm_id) == (ABNORMAL, foreign_id)
    assert [a.id for a in (await monitor.alarms(device_id="CPE-0500")).alarms] == [foreign_id]
