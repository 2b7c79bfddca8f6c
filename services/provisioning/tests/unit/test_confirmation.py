"""The customer's confirmation and feedback, and the notice's channel and texts: pure domain,
no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_provisioning.domain import confirmation as c
from orderline_provisioning.domain import fallout
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.notification import (
    Channel,
    attempts_left,
    channel_for,
    customer_message,
    notify_key,
    preferred_channel,
)
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def job_at(step: Step = Step.DONE, business_type: str = "broadband_install") -> Job:
    job = Job("job-1", "ord-1", "CPE-0001", business_type, "300M", "zh-CN", created_at=T0)
    while job.step is not step:
        job.advance(T0)
    return job


def test_a_completed_job_is_confirmed_once_and_the_same_call_returns_the_record() -> None:
    job = job_at()
    assert job.state is JobState.COMPLETED
    first, new = c.confirm(job, None, "call", "clerk-dev", T0)
    assert new and (first.channel, first.confirmed_by, first.confirmed_at) == (
        "call",
        "clerk-dev",
        T0,
    )
    again, new = c.confirm(job, first, "call", "clerk-other", T0 + timedelta(hours=1))
    assert not new and again == first
    with pytest.raises(c.AlreadyRecorded) as exc:
        c.confirm(job, first, "visit", "clerk-dev", T0)
    assert exc.value.code == c.ALREADY_CONFIRMED


@pytest.mark.parametrize("step", [Step.PRECHECKS, Step.ACTIVATE, Step.NOTIFY])
def test_a_job_that_has_not_completed_is_refused_naming_its_state(step: Step) -> None:
    job = job_at(step)
    with pytest.raises(c.NotCompleted) as exc:
        c.confirm(job, None, "call", "clerk-dev", T0)
    assert f"running at {step.value}" in str(exc.value)
    with pytest.raises(c.NotCompleted):
        c.record_feedback(job, None, 5, "", "call", "clerk-dev", T0)


def test_a_held_job_is_refused_with_its_reason() -> None:
    job = job_at(Step.NOTIFY)
    job.hold("CUSTOMER_NOT_REACHED", T0)
    with pytest.raises(c.NotCompleted) as exc:
        c.confirm(job, None, "call", "clerk-dev", T0)
    assert "held at notify (CUSTOMER_NOT_REACHED)" in str(exc.value)


@pytest.mark.parametrize(
    ("score", "comment", "fields"),
    [
        (0, "", ["score"]),
        (6, "", ["score"]),
        (5, "x" * 501, ["comment"]),
        (-1, "x" * 501, ["score", "comment"]),
        (1, "x" * 500, []),
        (5, "", []),
    ],
)
def test_feedback_violations(score: int, comment: str, fields: list[str]) -> None:
    assert [f for f, _ in c.feedback_violations(score, comment)] == fields


def test_feedback_once_its_comment_masked_and_a_different_one_refused() -> None:
    job = job_at()
    first, new = c.record_feedback(
        job, None, 4, " call me on +86 138 0013 8000 ", "call", "clerk-dev", T0
    )
    assert new and first.comment == "call me on +86138****8000" and first.score == 4
    again, new = c.record_feedback(
        job, first, 4, "call me on +86 138 0013 8000", "call", "clerk-x", T0
    )
    assert not new and again == first
    with pytest.raises(c.AlreadyRecorded) as exc:
        c.record_feedback(job, first, 5, "call me on +86 138 0013 8000", "call", "clerk-dev", T0)
    assert exc.value.code == c.FEEDBACK_ALREADY_RECORDED


# --- the notice -------------------------------------------------------------------------------


def test_the_preferred_channel_comes_first_then_the_channels_take_turns() -> None:
    assert preferred_channel("phone") is Channel.VOICE
    assert preferred_channel("sms") is preferred_channel("") is Channel.SMS
    voice_first = [channel_for(n, 2, Channel.VOICE) for n in range(5)]
    assert voice_first == [Channel.VOICE, Channel.VOICE, Channel.SMS, Channel.VOICE, Channel.SMS]


def test_the_attempts_are_bounded_and_undelivered_messages_get_new_keys() -> None:
    assert attempts_left(9, 10) and not attempts_left(10, 10)
    assert notify_key("j", 0) == "j:notify"
    assert notify_key("j", 2) == "j:notify:2"
    assert notify_key("j", 1, ":retry1") == "j:notify:1:retry1"


def test_a_fallout_retry_at_notify_gives_a_fresh_round_of_attempts() -> None:
    job = job_at(Step.NOTIFY)
    job.notify_failures, job.notify_undelivered = 10, 7
    job.hold("CUSTOMER_NOT_REACHED", T0)
    fallout.retry(job, T0)
    assert (job.state, job.notify_failures, job.notify_undelivered) == (JobState.RUNNING, 0, 0)
    assert job.key_suffix == ":retry1"


@pytest.mark.parametrize(
    ("locale", "kwargs", "expected", "absent"),
    [
        ("zh-CN", {"action": "deactivate"}, "相关业务已停止服务", "已开通"),
        ("en", {"action": "deactivate"}, "your service has been stopped", "now active"),
        (
            "zh-CN",
            {"new_address": "北京市海淀区中关村大街1号"},
            "新地址北京市海淀区中关村大街1号",
            "停止",
        ),
        ("en", {"new_address": "1 Zhongguancun St"}, "new address, 1 Zhongguancun St", "stopped"),
        ("en", {}, "service is now active", "stopped"),
    ],
)
def test_texts_per_business_type(
    locale: str, kwargs: dict[str, str], expected: str, absent: str
) -> None:
    text = customer_message(locale, "relocation", "AV-ABCDEFGHIJKL", **kwargs)
    assert expected in text and absent not in text and "AV-ABCDEFGHIJKL" in text
