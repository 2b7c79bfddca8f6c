"""Maintenance tickets (TMF621) and escalation, pure: the step table, the close rule, the code
lists, and what escalation decides for each category, a safety failure and the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_device_monitor.domain import tickets
from orderline_device_monitor.domain.escalation import (
    DONE,
    FIRST_LINE,
    Action,
    EscalationPolicy,
    OpenTicket,
    Tried,
    TryAction,
    decide,
    ticket_description,
)
from orderline_device_monitor.domain.health import Category, DeviceState, OpenAlarm, Severity
from orderline_device_monitor.domain.tickets import IllegalTicketStep, TicketState

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
WINDOW = EscalationPolicy(recovery_window=timedelta(minutes=5))


def new_ticket() -> tickets.Ticket:
    return tickets.open_ticket(
        ticket_id="t1",
        device_id="CPE-0001",
        reason_code=tickets.REPORTED,
        category=None,
        description="no picture",
        order_id=None,
        alarm_id=None,
        by="intake",
        at=T0,
    )


def resolved() -> tickets.Ticket:
    ticket = tickets.progress(new_ticket(), by="m", at=T0 + timedelta(minutes=1))
    return tickets.resolve(
        ticket,
        by="m",
        at=T0 + timedelta(minutes=2),
        root_cause_code="POOR_COOLING",
        corrective_action_code="COOLING_RESTORED",
    )


def test_a_ticket_moves_acknowledged_in_progress_resolved_closed() -> None:
    ticket = new_ticket()
    assert ticket.state is TicketState.ACKNOWLEDGED and ticket.is_open
    ticket = resolved()
    assert ticket.state is TicketState.RESOLVED and ticket.root_cause_code == "POOR_COOLING"
    # Four-eyes: the resolver ("m") does not confirm the repair; another person does.
    with pytest.raises(tickets.SameResolver):
        tickets.close(ticket, by="m", at=T0 + timedelta(minutes=3), confirmed_by_person=True)
    closed = tickets.close(ticket, by="e", at=T0 + timedelta(minutes=3), confirmed_by_person=True)
    assert closed.state is TicketState.CLOSED and not closed.is_open
    assert closed.closed_by == "e" and closed.resolved_by == "m"
    assert closed.close_reason == tickets.PERSON_CONFIRMED
    assert [n.state for n in closed.history] == list(TicketState)


@pytest.mark.parametrize(
    ("step", "ticket"),
    [
        ("close", new_ticket()),
        ("resolve", new_ticket()),
        ("progress", resolved()),
        ("close", tickets.progress(new_ticket(), by="m", at=T0)),
    ],
)
def test_a_step_out_of_order_is_refused(step: str, ticket: tickets.Ticket) -> None:
    with pytest.raises(IllegalTicketStep) as raised:
        if step == "close":
            tickets.close(ticket, by="m", at=T0, confirmed_by_person=True)
        elif step == "resolve":
            tickets.resolve(
                ticket,
                by="m",
                at=T0,
                root_cause_code="OVERLOAD",
                corrective_action_code="LOAD_REDUCED",
            )
        else:
            tickets.progress(ticket, by="m", at=T0)
    assert " | " in str(raised.value)


def test_resolved_closes_only_confirmed_by_a_person_or_by_a_healthy_device() -> None:
    ticket = resolved()
    with pytest.raises(IllegalTicketStep):
        tickets.close(ticket, by=tickets.SYSTEM, at=T0, confirmed_by_person=False)
    closed = tickets.close(
        ticket, by=tickets.SYSTEM, at=T0, confirmed_by_person=False, device_healthy=True
    )
    assert closed.close_reason == tickets.DEVICE_CONFIRMED_HEALTHY


def test_healthy_is_confirmed_only_by_telemetry_after_the_resolution() -> None:
    ticket = resolved()
    assert ticket.resolved_at is not None
    before = ticket.resolved_at - timedelta(seconds=1)
    after = ticket.resolved_at + timedelta(seconds=1)
    assert not tickets.confirmed_healthy(ticket, last_seen=before, healthy=True, abnormal=False)
    assert not tickets.confirmed_healthy(ticket, last_seen=after, healthy=False, abnormal=False)
    assert not tickets.confirmed_healthy(ticket, last_seen=after, healthy=True, abnormal=True)
    assert tickets.confirmed_healthy(ticket, last_seen=after, healthy=True, abnormal=False)
    assert not tickets.confirmed_healthy(
        new_ticket(), last_seen=after, healthy=True, abnormal=False
    )


def test_resolution_codes_come_from_the_code_lists() -> None:
    assert tickets.resolution_problems("POOR_COOLING", "COOLING_RESTORED") == []
    problems = dict(tickets.resolution_problems("", "FIXED_IT"))
    assert set(problems) == {"root_cause_code", "corrective_action_code"}
    assert all(" | " in text for text in problems.values())
    assert all(len(texts) == 2 for texts in tickets.ROOT_CAUSES.values())
    assert all(len(texts) == 2 for texts in tickets.CORRECTIVE_ACTIONS.values())


# --- escalation -------------------------------------------------------------------------------


def device(*categories: Category, at: datetime = T0, **flags: bool) -> DeviceState:
    alarms = {
        c: OpenAlarm(f"a-{c.value}", at + timedelta(seconds=i), Severity.MAJOR)
        for i, c in enumerate(categories)
    }
    return DeviceState("CPE-0001", open_alarms=alarms, **flags)


def test_a_safety_failure_opens_a_ticket_at_once_and_nothing_is_tried() -> None:
    for others in ((), (Category.RESOURCES,), (Category.DISPLAY, Category.LINE)):
        decision = decide(device(*others, Category.SAFETY), (), T0, WINDOW)
        assert decision == OpenTicket(tickets.SAFETY_FAILURE, Category.SAFETY, "a-safety")
    assert FIRST_LINE[Category.SAFETY] is None


def test_first_line_is_tried_once_then_the_window_runs_out() -> None:
    state = device(Category.RESOURCES)
    first = decide(state, (), T0, WINDOW)
    assert first == TryAction(Action.REBOOT, (Category.RESOURCES,))
    tried = (Tried(Action.REBOOT, T0, DONE),)
    assert decide(state, tried, T0 + timedelta(minutes=4, seconds=59), WINDOW) is None
    late = decide(state, tried, T0 + timedelta(minutes=5), WINDOW)
    assert late == OpenTicket(tickets.NOT_RECOVERED, Category.RESOURCES, "a-resources")


@pytest.mark.parametrize("category", [Category.THERMAL, Category.MECHANICAL])
def test_categories_without_a_safe_remote_action_only_wait(category: Category) -> None:
    state = device(category)
    assert decide(state, (), T0 + timedelta(minutes=1), WINDOW) is None
    assert isinstance(decide(state, (), T0 + timedelta(minutes=5), WINDOW), OpenTicket)


def test_nothing_is_tried_on_an_unreachable_device_or_one_under_maintenance() -> None:
    lost = device(Category.DISPLAY, Category.COMMUNICATION)
    assert decide(lost, (), T0, WINDOW) is None
    assert isinstance(decide(lost, (), T0 + timedelta(minutes=6), WINDOW), OpenTicket)
    assert decide(device(Category.SAFETY, under_maintenance=True), (), T0, WINDOW) is None
    assert decide(device(), (), T0 + timedelta(hours=1), WINDOW) is None


def test_the_window_of_alarms_older_than_the_last_ticket_runs_from_its_close() -> None:
    state = device(Category.THERMAL)
    closed = T0 + timedelta(minutes=10)
    now = closed + timedelta(minutes=1)
    assert decide(state, (), now, WINDOW, not_before=closed) is None
    assert decide(state, (), closed + timedelta(minutes=5), WINDOW, not_before=closed)


def test_ticket_texts_are_in_english_and_chinese() -> None:
    safety = OpenTicket(tickets.SAFETY_FAILURE, Category.SAFETY, "a")
    assert "安全保护" in ticket_description(safety, (), 300)
    text = ticket_description(
        OpenTicket(tickets.NOT_RECOVERED, Category.RESOURCES, "a"),
        (Tried(Action.REBOOT, T0, DONE),),
        300,
    )
    en, zh = text.split(" | ")
    assert "REBOOT (DONE)" in en and "300 s" in en and "300 秒内未恢复" in zh
