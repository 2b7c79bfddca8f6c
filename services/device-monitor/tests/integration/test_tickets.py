# A report in Chinese carries zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""Maintenance tickets, escalation and anomaly records over real gRPC, SQLite and PostgreSQL,
with the events on the real DEVICE stream.

The recovery window runs on the injected clock; the device agent is a recording stand-in
because the real one (DeviceAgentService) has no Reboot RPC to call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from device_monitor_harness import (
    DeviceMonitor,
    Launcher,
    eventually,
    field_violations,
    sample,
)
from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2, order_events_pb2
from orderline_device_monitor.app.agent import ActionResult
from orderline_device_monitor.domain.escalation import DEFAULT_RECOVERY_WINDOW, DONE


class RecordingAgent:
    """Stands in for a DeviceAgent with a Reboot RPC: records each reboot asked for."""

    def __init__(self) -> None:
        self.reboots: list[tuple[str, str]] = []

    async def reboot(self, device_id: str, idempotency_key: str) -> ActionResult:
        self.reboots.append((device_id, idempotency_key))
        return ActionResult(DONE, "restarted")


class SteppingClock:
    """The service's clock: real time plus however far a test has moved it on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by


def stamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


async def expect_error(code: grpc.StatusCode, call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    return raised.value


def payload_of(envelope: Any, message: Any) -> Any:
    assert envelope.payload.Unpack(message)
    return message


async def test_the_ticket_lifecycle(monitor: DeviceMonitor) -> None:
    device = "CPE-0201"
    await monitor.stream([sample(device)], [sample(device, line_up=False)])
    [line_alarm] = (await monitor.alarms(device_id=device, only_open=True)).alarms

    # Intake's follow-up reports a problem, as the service role.
    reply = await monitor.ticket_call(
        "CreateTicket",
        "dev-service",
        device_id=device,
        description="customer: no internet since yesterday | 客户：昨天起无法上网",
        category=device_pb2.HEALTH_CATEGORY_LINE,
        order_id="ORD-1",
    )
    ticket = reply.ticket
    assert reply.created and ticket.state == device_pb2.TICKET_STATE_ACKNOWLEDGED
    assert ticket.reason_code == "REPORTED" and ticket.order_id == "ORD-1"
    assert len(ticket.anomaly_ids) == 1
    health = await monitor.health(device)
    assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE
    fitness = await monitor.fitness(device)
    assert not fitness.fit and "UNDER_MAINTENANCE" in fitness.reasons

    again = await monitor.ticket_call(
        "CreateTicket", "dev-service", device_id=device, description="still down"
    )
    assert not again.created and again.ticket.id == ticket.id
    assert [n.text for n in again.ticket.history][-1] == "still down"

    error = await expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        monitor.ticket_call("CloseTicket", ticket_id=ticket.id),
    )
    assert "acknowledged" in (error.details() or "")
    await expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        monitor.ticket_call("ProgressTicket", "dev-clerk", ticket_id=ticket.id),
    )
    progressed = (
        await monitor.ticket_call("ProgressTicket", ticket_id=ticket.id, note="on my way")
    ).ticket
    assert progressed.state == device_pb2.TICKET_STATE_IN_PROGRESS

    bad = await expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        monitor.ticket_call(
            "ResolveTicket", ticket_id=ticket.id, root_cause_code="GREMLINS", note="x" * 1001
        ),
    )
    assert field_violations(bad) == ["root_cause_code", "corrective_action_code", "note"]
    resolved = (
        await monitor.ticket_call(
            "ResolveTicket",
            ticket_id=ticket.id,
            root_cause_code="LINE_DAMAGED",
            corrective_action_code="LINE_REPAIRED",
            note="drop cable replaced",
        )
    ).ticket
    assert resolved.state == device_pb2.TICKET_STATE_RESOLVED
    assert resolved.resolved_by == "maintenance-dev"

    # Four-eyes: who resolved it does not confirm it; another person does.
    same = await expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        monitor.ticket_call("CloseTicket", ticket_id=ticket.id, note="trust me"),
    )
    assert "four-eyes" in (same.details() or "")
    closed = (
        await monitor.ticket_call(
            "CloseTicket", "dev-engineer", ticket_id=ticket.id, note="link is up"
        )
    ).ticket
    assert closed.state == device_pb2.TICKET_STATE_CLOSED
    assert closed.close_reason == "PERSON_CONFIRMED" and closed.closed_by == "engineer-dev"
    assert [n.state for n in closed.history] == [
        device_pb2.TICKET_STATE_ACKNOWLEDGED,
        device_pb2.TICKET_STATE_ACKNOWLEDGED,
        device_pb2.TICKET_STATE_IN_PROGRESS,
        device_pb2.TICKET_STATE_RESOLVED,
        device_pb2.TICKET_STATE_CLOSED,
    ]
    # Out of maintenance; the line alarm still stands, so the device is abnormal again.
    health = await monitor.health(device)
    assert health.condition == device_pb2.DEVICE_CONDITION_ABNORMAL

    # The anomaly record has the root cause and corrective action as codes.
    [anomaly] = await monitor.anomalies(device_id=device)
    assert anomaly.alarm_id == line_alarm.id and anomaly.ticket_id == ticket.id
    assert (anomaly.root_cause_code, anomaly.corrective_action_code) == (
        "LINE_DAMAGED",
        "LINE_REPAIRED",
    )
    assert anomaly.closed_at.seconds > 0

    listed = await monitor.tickets(device_id=device, states=[device_pb2.TICKET_STATE_CLOSED])
    assert [t.id for t in listed] == [ticket.id]
    assert await monitor.tickets(device_id=device, states=[device_pb2.TICKET_STATE_RESOLVED]) == []

    events = await monitor.wait_for_event("device.ticket_closed")
    types = [e.type for e in events if e.type.startswith("device.ticket_")]
    assert types == [
        "device.ticket_opened",
        "device.ticket_progressed",
        "device.ticket_resolved",
        "device.ticket_closed",
    ]
    closed_event = next(e for e in events if e.type == "device.ticket_closed")
    assert closed_event.order_id == "ORD-1" and closed_event.device_id == device
    payload = payload_of(closed_event, device_events_pb2.TicketClosed())
    assert payload.root_cause_code == "LINE_DAMAGED"
    conditions = [
        payload_of(e, device_events_pb2.DeviceHealthChanged()).condition
        for e in events
        if e.type == "device.health_changed"
    ]
    assert device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE in conditions
    # The device stopped work when its line failed; maintenance ended with it still abnormal
    # (the line's alarm stands), so it has not recovered.
    turns = [e.type for e in events if e.type in ("device.abnormal", "device.recovered")]
    assert turns == ["device.abnormal"]


async def test_bad_ticket_requests_are_refused(monitor_sqlite: DeviceMonitor) -> None:
    monitor = monitor_sqlite
    await expect_error(
        grpc.StatusCode.NOT_FOUND,
        monitor.ticket_call("GetTicket", ticket_id="0190f0e0-0000-7000-8000-000000000000"),
    )
    await expect_error(
        grpc.StatusCode.NOT_FOUND,
        monitor.ticket_call("ProgressTicket", ticket_id="0190f0e0-0000-7000-8000-000000000000"),
    )
    bad = await expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        monitor.ticket_call(
            "CreateTicket", "dev-service", device_id="", description=" ", category=99
        ),
    )
    assert field_violations(bad) == ["device_id", "description", "category"]
    bad = await expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        monitor.ticket_call("GetTicket", ticket_id="x" * 37),
    )
    assert field_violations(bad) == ["ticket_id"]
    bad = await expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        monitor.ticket_call("ListTickets", states=[42], page_size=501, page_token="nope"),
    )
    assert field_violations(bad) == ["page_size", "states[0]", "page_token"]
    await expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        monitor.ticket_call("CreateTicket", "dev-clerk", device_id="CPE-1", description="x"),
    )


async def test_a_resolved_ticket_closes_once_telemetry_confirms_the_device_healthy(
    monitor_sqlite: DeviceMonitor,
) -> None:
    monitor = monitor_sqlite
    device = "CPE-0202"
    await monitor.stream([sample(device)])
    ticket = (
        await monitor.ticket_call(
            "CreateTicket", "dev-engineer", device_id=device, description="fan noise"
        )
    ).ticket
    await monitor.ticket_call("ProgressTicket", ticket_id=ticket.id)
    await monitor.ticket_call(
        "ResolveTicket",
        ticket_id=ticket.id,
        root_cause_code="MECHANICAL_WEAR",
        corrective_action_code="COMPONENT_REPLACED",
    )
    # Telemetry heard after the resolution, and nothing failing: closed by itself.
    await monitor.stream([sample(device)])
    closed = await eventually(
        lambda: monitor.ticket_call("GetTicket", ticket_id=ticket.id),
        lambda r: r.ticket.state == device_pb2.TICKET_STATE_CLOSED,
        "the resolved ticket closed by telemetry",
    )
    assert closed.ticket.close_reason == "DEVICE_CONFIRMED_HEALTHY"
    assert closed.ticket.closed_by == "device-monitor"
    health = await monitor.health(device)
    assert health.condition == device_pb2.DEVICE_CONDITION_HEALTHY


async def test_a_safety_failure_opens_a_ticket_at_once_and_nothing_is_tried(
    launch: Launcher, db_url: str
) -> None:
    agent = RecordingAgent()
    async with launch(db_url, agent=agent) as monitor:
        device = "CPE-0203"
        await monitor.stream([sample(device)], [sample(device, safety_ok=False)])
        # In the transaction that raised the alarm: there when the stream's answer is.
        [ticket] = await monitor.tickets(device_id=device)
        [alarm] = (await monitor.alarms(device_id=device, only_open=True)).alarms
        assert ticket.reason_code == "SAFETY_FAILURE" and ticket.alarm_id == alarm.id
        assert ticket.category == device_pb2.HEALTH_CATEGORY_SAFETY
        assert ticket.opened_by == "device-monitor" and list(ticket.actions_tried) == []
        assert "安全保护失效" in ticket.description
        health = await monitor.health(device)
        assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE
        [anomaly] = await monitor.anomalies(device_id=device)
        assert anomaly.ticket_id == ticket.id and list(anomaly.actions_tried) == []
        # The samples up to the onset, the onset last so far.
        onset = anomaly.samples[anomaly.onset_index]
        assert not onset.safety_ok and anomaly.samples[0].safety_ok
        events = await monitor.wait_for_event("device.ticket_opened")
        opened = next(e for e in events if e.type == "device.ticket_opened")
        assert payload_of(opened, device_events_pb2.TicketOpened()).reason_code == (
            "SAFETY_FAILURE"
        )
        # The escalation ticker has had the device in the book since; it never reboots it.
        await eventually(
            lambda: monitor.fitness(device),
            lambda f: "UNDER_MAINTENANCE" in f.reasons,
            "the device under maintenance",
        )
        assert agent.reboots == []


async def test_first_line_troubleshooting_then_a_ticket_after_the_recovery_window(
    launch: Launcher, tmp_path: Path
) -> None:
    agent = RecordingAgent()
    clock = SteppingClock()
    async with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'dm.db'}", agent=agent, clock=clock
    ) as monitor:
        device = "CPE-0204"
        now = clock()
        starved = [sample(device, now - timedelta(seconds=s), cpu_pct=99.0) for s in (3, 2, 1, 0)]
        await monitor.stream([sample(device, now - timedelta(seconds=4))], starved)
        [alarm] = (await monitor.alarms(device_id=device, only_open=True)).alarms
        assert alarm.category == device_pb2.HEALTH_CATEGORY_RESOURCES

        # First line: one reboot, recorded on the anomaly record; no ticket inside the window.
        [anomaly] = await eventually(
            lambda: monitor.anomalies(device_id=device),
            lambda found: len(found) == 1 and len(found[0].actions_tried) == 1,
            "the reboot recorded",
        )
        action = anomaly.actions_tried[0]
        assert (action.action, action.outcome) == ("REBOOT", "DONE")
        assert agent.reboots == [(device, f"{alarm.id}:REBOOT")]
        assert await monitor.tickets(device_id=device) == []

        # The device does not recover: past the window on the service's clock, a ticket.
        clock.advance(DEFAULT_RECOVERY_WINDOW + timedelta(seconds=1))
        [ticket] = await eventually(
            lambda: monitor.tickets(device_id=device),
            lambda found: len(found) == 1,
            "the escalation ticket",
        )
        assert ticket.reason_code == "NOT_RECOVERED" and ticket.alarm_id == alarm.id
        assert ticket.category == device_pb2.HEALTH_CATEGORY_RESOURCES
        assert [a.action for a in ticket.actions_tried] == ["REBOOT"]
        assert "REBOOT (DONE)" in ticket.description and " | " in ticket.description
        # The resources anomaly, and that of the communication lost meanwhile (the clock moved
        # on without samples): both handled under the ticket.
        assert anomaly.id in ticket.anomaly_ids and len(ticket.anomaly_ids) == 2
        assert len(agent.reboots) == 1
        health = await monitor.health(device)
        assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE


async def test_anomaly_records_are_queried_by_model_category_and_period(
    monitor: DeviceMonitor,
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    await monitor.stream([sample("CPE-0301")], [sample("CPE-0301", line_up=False)])
    await monitor.stream([sample("CPE-0302")], [sample("CPE-0302", display_ok=False)])
    end = datetime.now(UTC) + timedelta(minutes=1)

    line = await monitor.anomalies(categories=[device_pb2.HEALTH_CATEGORY_LINE])
    assert [a.device_id for a in line] == ["CPE-0301"]
    assert line[0].offending_metrics == ["line_up"] and line[0].device_model == "default"
    both = await monitor.anomalies(
        device_model="default", first_seen_from=stamp(start), first_seen_before=stamp(end)
    )
    assert [a.device_id for a in both] == ["CPE-0302", "CPE-0301"]
    assert await monitor.anomalies(device_model="CPE-X9") == []
    assert await monitor.anomalies(first_seen_from=stamp(end)) == []
    assert await monitor.anomalies(first_seen_before=stamp(start)) == []
    page = await monitor.ticket_call("ListAnomalies", "dev-auditor", page_size=1)
    assert len(page.anomalies) == 1 and page.next_page_token
    rest = await monitor.ticket_call(
        "ListAnomalies", "dev-auditor", page_size=1, page_token=page.next_page_token
    )
    assert [a.device_id for a in rest.anomalies] == ["CPE-0301"]

    # Samples after onset are added once five are in.
    await monitor.stream([sample("CPE-0301", line_up=False) for _ in range(5)])
    [record] = await eventually(
        lambda: monitor.anomalies(device_id="CPE-0301"),
        lambda found: len(found[0].samples) == 7,
        "five samples after onset",
    )
    assert record.onset_index == 1 and not record.samples[1].line_up

    bad = await expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        monitor.ticket_call(
            "ListAnomalies",
            categories=[77],
            first_seen_from=stamp(end),
            first_seen_before=stamp(start),
            page_token=page.next_page_token,
        ),
    )
    assert field_violations(bad) == ["categories[0]", "first_seen_before", "page_token"]
    await expect_error(
        grpc.StatusCode.PERMISSION_DENIED, monitor.ticket_call("ListAnomalies", "dev-clerk")
    )


async def test_maintenance_on_a_fit_device_stops_work_and_its_close_lets_it_go_on(
    monitor: DeviceMonitor,
) -> None:
    """device.abnormal when a ticket puts a healthy device under maintenance (naming the
    ticket), device.recovered when the close leaves it healthy; once each."""
    device = "CPE-0207"
    await monitor.stream([sample(device)])
    ticket = (
        await monitor.ticket_call(
            "CreateTicket", "dev-engineer", device_id=device, description="loose mount"
        )
    ).ticket
    assert not (await monitor.fitness(device)).fit
    await monitor.ticket_call("ProgressTicket", ticket_id=ticket.id)
    await monitor.ticket_call(
        "ResolveTicket",
        ticket_id=ticket.id,
        root_cause_code="MECHANICAL_WEAR",
        corrective_action_code="COMPONENT_REPLACED",
    )
    await monitor.ticket_call("CloseTicket", "dev-engineer", ticket_id=ticket.id, note="tight")
    assert (await monitor.fitness(device)).fit

    events = await monitor.wait_for_event("device.recovered")
    turns = [
        e
        for e in events
        if e.device_id == device and e.type in ("device.abnormal", "device.recovered")
    ]
    assert [e.type for e in turns] == ["device.abnormal", "device.recovered"]
    stop = payload_of(turns[0], device_events_pb2.DeviceAbnormal())
    assert stop.ticket_id == ticket.id and list(stop.alarms) == []
    assert stop.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE
    go_on = payload_of(turns[1], device_events_pb2.DeviceRecovered())
    assert go_on.ticket_id == ticket.id
    assert go_on.condition == device_pb2.DEVICE_CONDITION_HEALTHY


async def test_a_device_problem_reported_at_a_follow_up_opens_one_ticket(
    monitor: DeviceMonitor,
) -> None:
    """intake's order.case_opened about the device: a maintenance ticket naming the order, once
    however often the event comes; a case not about the device opens none."""
    device, other = "CPE-0231", "CPE-0232"
    await monitor.stream([sample(device), sample(other)])
    case = order_events_pb2.CaseOpened(
        order_id="ORD-31",
        business_type="broadband_install",
        case_id="CASE-31",
        follow_up_id="FU-31",
        device_problem=True,
        opened_by="clerk-1",
        device_id=device,
    )
    first = await monitor.publish(
        "order.case_opened", case, producer="intake", order_id="ORD-31", device_id=device
    )
    # Redelivered under a new message id: the consumer's inbox knows the event.
    await monitor.publish(
        "order.case_opened",
        case,
        producer="intake",
        order_id="ORD-31",
        device_id=device,
        event_id=first,
        msg_id=f"{first}-again",
    )
    not_device = order_events_pb2.CaseOpened(
        order_id="ORD-32", case_id="CASE-32", device_problem=False, device_id=other
    )
    await monitor.publish("order.case_opened", not_device, producer="intake", order_id="ORD-32")

    [ticket] = await eventually(
        lambda: monitor.tickets(device_id=device), lambda t: len(t) == 1, "the follow-up ticket"
    )
    assert ticket.reason_code == "REPORTED" and ticket.order_id == "ORD-31"
    assert "CASE-31" in ticket.description and "回访" in ticket.description
    assert [n.by for n in ticket.history][:1] == ["clerk-1"]
    health = await monitor.health(device)
    assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE

    # The same case again (a third delivery, a new event id): the request is known, no report.
    await monitor.publish(
        "order.case_opened", case, producer="intake", order_id="ORD-31", device_id=device
    )
    await monitor.stream([sample(device)])
    assert [t.id for t in await monitor.tickets(device_id=device)] == [ticket.id]
    assert await monitor.tickets(device_id=other) == []
    assert (await monitor.health(other)).condition != (
        device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE
    )
