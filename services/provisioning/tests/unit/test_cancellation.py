"""What a cancellation means for a job, by how far it got (domain/cancellation.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderline_provisioning.domain import cancellation as c
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def a_job(step: Step = Step.PRECHECKS, state: JobState = JobState.RUNNING) -> Job:
    job = Job("j-1", "o-1", "CPE-0001", "broadband_install", "300M", "zh-CN", T0)
    job.step, job.state = step, state
    return job


@pytest.mark.parametrize(
    ("step", "state", "decision"),
    [
        (Step.PRECHECKS, JobState.RUNNING, c.Decision.CANCEL_NOW),
        (Step.PRECHECKS, JobState.HELD, c.Decision.CANCEL_NOW),
        (Step.CONFIGURE, JobState.RUNNING, c.Decision.COMPENSATE),
        (Step.TEST, JobState.HELD, c.Decision.COMPENSATE),
        (Step.ACTIVATE, JobState.RUNNING, c.Decision.COMPENSATE),
        (Step.TEST, JobState.FAILED, c.Decision.ALREADY_FAILED),
        (Step.NOTIFY, JobState.RUNNING, c.Decision.DECLINE),
        (Step.DONE, JobState.COMPLETED, c.Decision.DECLINE),
        (Step.CANCEL, JobState.CANCELLED, c.Decision.ALREADY_DECIDED),
    ],
)
def test_how_far_the_job_got_decides(step: Step, state: JobState, decision: c.Decision) -> None:
    assert c.decide(a_job(step, state)) is decision


def test_an_activated_job_is_past_its_point_of_no_return_whatever_its_step() -> None:
    job = a_job(Step.ACTIVATE)
    job.activated_at = T0
    assert c.decide(job) is c.Decision.DECLINE


def test_compensation_takes_the_cancel_step_then_records_the_rollback() -> None:
    job = a_job(Step.TEST, JobState.HELD)
    c.take_request(job, "CAN-1", "CUSTOMER_REQUEST", T0)
    c.begin_compensation(job, T0)
    assert job.runnable and job.step is Step.CANCEL and job.next_attempt_at == T0
    assert job.cancellation_state == c.CancellationState.COMPENSATING
    c.finish_compensation(job, 1, T0)
    assert job.state is JobState.CANCELLED and job.rolled_back_to == 1
    assert job.compensation == c.ROLLED_BACK and not job.runnable


def test_an_untouched_job_ends_at_once_with_nothing_to_undo() -> None:
    job = a_job()
    c.take_request(job, "CAN-1", "OTHER", T0)
    c.cancel_now(job, T0)
    assert job.state is JobState.CANCELLED and job.compensation == c.NOTHING_TO_UNDO
    assert job.rolled_back_to is None
