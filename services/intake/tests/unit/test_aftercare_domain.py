"""The follow-up schedule, overdue, and the communication log's text rules: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_catalogue import load_catalogue
from orderline_intake.domain.communication import (
    MAX_TEXT,
    Channel,
    checked_text,
    mask_phones,
    notification_channel,
    notification_text,
)
from orderline_intake.domain.followup import CaseState, Outcome, TroubleCase, schedule
from orderline_runtime.errors import FailedPrecondition, InvalidArgument, Violations

DONE = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_visits_fall_due_at_the_catalogue_days_after_completion() -> None:
    days = load_catalogue().get("dedicated_line").follow_up_days  # type: ignore[union-attr]
    visits = schedule("O-1", "dedicated_line", days, DONE, [f"F-{d}" for d in days])
    assert [v.day for v in visits] == list(days) == [3, 30, 90]
    assert [v.due_at - DONE for v in visits] == [timedelta(days=d) for d in days]
    assert all(v.order_id == "O-1" and not v.recorded for v in visits)


def test_a_visit_is_overdue_once_due_and_until_recorded() -> None:
    [visit] = schedule("O-1", "iptv", [7], DONE, ["F-1"])
    due = visit.due_at
    assert not visit.overdue(due - timedelta(seconds=1))
    assert not visit.overdue(due)  # due at now is not yet before now
    assert visit.overdue(due + timedelta(seconds=1))
    recorded = visit.record(Outcome.NOT_REACHED, "", "clerk-li", due + timedelta(days=1))
    assert not recorded.overdue(due + timedelta(days=30))
    assert recorded.recorded_by == "clerk-li" and recorded.outcome is Outcome.NOT_REACHED


def test_a_visit_is_recorded_once() -> None:
    [visit] = schedule("O-1", "iptv", [7], DONE, ["F-1"])
    recorded = visit.record(Outcome.SATISFIED, "", "clerk-li", DONE)
    with pytest.raises(FailedPrecondition) as twice:
        recorded.record(Outcome.PROBLEM_REPORTED, "no signal", "clerk-wang", DONE)
    assert twice.value.reason == "FOLLOW_UP_RECORDED"
    assert " | " in twice.value.violations[0].description


def test_a_case_closes_once() -> None:
    case = TroubleCase("C-1", "O-1", "F-1", "no signal", True, "clerk-li", DONE)
    closed = case.close("line repaired", "maint-1", DONE + timedelta(days=1))
    assert closed.state is CaseState.CLOSED and closed.closed_by == "maint-1"
    with pytest.raises(FailedPrecondition):
        closed.close("again", "maint-1", DONE)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("call back on +8613912345678", "call back on +86139****5678"),
        ("客户说打13912345678找他", "客户说打139****5678找他"),
        ("office 010-6552 1234 after 6", "office 010****1234 after 6"),
        # Ids, dates and short numbers stay readable.
        ("voucher AV-ABC123, order 0192f3a4 on 2026-12-06, room 1203", None),
    ],
)
def test_phone_numbers_in_a_text_are_masked(text: str, kept: str | None) -> None:
    assert mask_phones(text) == (kept or text)


def test_a_text_is_required_and_short() -> None:
    v = Violations()
    checked_text("   ", v)
    checked_text("x" * (MAX_TEXT + 1), v, "note")
    with pytest.raises(InvalidArgument) as refused:
        v.raise_if_any()
    fields = {f.field: f.description for f in refused.value.violations}
    assert set(fields) == {"text", "note"}
    assert all(" | " in d for d in fields.values())


def test_a_notification_is_logged_by_its_channel_without_the_customer_number() -> None:
    assert notification_channel("sms") is Channel.SMS
    assert notification_channel("voice") is Channel.CALL
    text = notification_text("voice", "DLV-42")
    assert "DLV-42" in text and "voice" in text and " | " in text
