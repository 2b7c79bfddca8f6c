"""A person's hold of the order and the order's job, without I/O: a running job stops at once
(or at its step boundary) held PERSON_HOLD, out of the fallout queue; one past activation waits
before its notice; the resume runs it from the step it was held at, or holds it for its device
when that is abnormal now; a job held for both its device and a person runs only once both are
lifted; an older hold or resume never overrides a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_provisioning.domain import device_health, fallout, person_hold
from orderline_provisioning.domain.cancellation import (
    CancellationState,
    begin_compensation,
    decline,
    take_request,
)
from orderline_provisioning.domain.device_health import DeviceAlarm, DeviceWord
from orderline_provisioning.domain.job import DEVICE_ABNORMAL, PERSON_HOLD, TESTS_FAILED, Job
from orderline_provisioning.domain.person_hold import PersonWord, Release
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def job_at(step: Step) -> Job:
    job = Job("job-1", "ord-1", "CPE-0007", "broadband_install", "300M", "zh-CN", created_at=T0)
    while job.step is not step:
        job.advance(T0)
    return job


def hold(version: int = 2, reason: str = "CUSTOMER_REQUEST") -> PersonWord:
    return PersonWord(version, hold=True, reason_code=reason, actor="clerk-dev", at=T0)


def resume(version: int = 3) -> PersonWord:
    return PersonWord(version, hold=False, reason_code="CUSTOMER_READY", actor="clerk-dev", at=T0)


def abnormal() -> DeviceWord:
    return DeviceWord(
        "CPE-0007",
        abnormal=True,
        event_time=T0,
        event_id="0190-a",
        alarms=(DeviceAlarm("ALM-7", "thermal", "critical"),),
    )


def recovered() -> DeviceWord:
    return DeviceWord("CPE-0007", abnormal=False, event_time=LATER, event_id="0190-b")


def held_by_person(step: Step) -> Job:
    job = job_at(step)
    assert person_hold.take(job, hold())
    assert person_hold.hold_now(job, T0)
    return job


@pytest.mark.parametrize("step", [Step.PRECHECKS, Step.CONFIGURE, Step.TEST, Step.ACTIVATE])
def test_a_running_job_is_held_at_its_step_naming_the_person(step: Step) -> None:
    job = job_at(step)
    assert person_hold.take(job, hold())
    assert job.person_held and job.person_hold_version == 2
    assert person_hold.hold_now(job, LATER)
    assert (job.state, job.step, job.reason) == (JobState.HELD, step, PERSON_HOLD)
    assert job.detail == (
        "the order is held by clerk-dev (CUSTOMER_REQUEST) since 2026-12-08 09:30 UTC; "
        f"the job waits at {step.value} until the order is resumed"
    )
    # The person who held the order resumes it: not the fallout queue.
    assert job.fallout_at is None and not fallout.in_fallout(job)
    assert not fallout.is_fallout_reason(PERSON_HOLD)


def test_a_job_not_started_is_held_before_it_touches_the_device() -> None:
    job = held_by_person(Step.PRECHECKS)
    # A hold before the checklist passed: the device is not the job's (its reservation goes).
    assert not job.touched_device and job.state is JobState.HELD


def test_past_activation_the_service_stays_active_and_the_notice_waits() -> None:
    job = held_by_person(Step.NOTIFY)
    assert (job.state, job.step, job.reason) == (JobState.HELD, Step.NOTIFY, PERSON_HOLD)
    assert "the service is active; the customer's notice waits" in job.detail


def test_a_job_over_or_being_cancelled_only_keeps_the_version() -> None:
    done = job_at(Step.DONE)
    assert person_hold.take(done, hold())
    assert not done.person_held and done.person_hold_version == 2
    assert not person_hold.hold_now(done, LATER)
    assert done.state is JobState.COMPLETED

    cancelling = job_at(Step.TEST)
    take_request(cancelling, "CAN-1", "CUSTOMER_REQUEST", T0)
    begin_compensation(cancelling, T0)
    assert person_hold.take(cancelling, hold())
    assert not cancelling.person_held
    assert not person_hold.hold_now(cancelling, LATER)
    assert (cancelling.state, cancelling.step) == (JobState.RUNNING, Step.CANCEL)


def test_a_declined_cancellation_leaves_the_job_to_the_persons_hold() -> None:
    job = job_at(Step.NOTIFY)
    take_request(job, "CAN-1", "CUSTOMER_REQUEST", T0)
    decline(job, T0)
    assert job.cancellation_state == CancellationState.DECLINED
    assert person_hold.take(job, hold())
    assert person_hold.hold_now(job, LATER) and job.reason == PERSON_HOLD


def test_an_older_hold_or_resume_changes_nothing() -> None:
    job = job_at(Step.TEST)
    assert person_hold.take(job, resume(version=5))
    # The hold that resume lifted, delivered late: the job goes on.
    assert not person_hold.take(job, hold(version=4))
    assert not job.person_held and job.person_hold_version == 5
    assert not person_hold.hold_now(job, LATER)
    assert person_hold.take(job, hold(version=6))
    # The same hold again (a redelivery that got past the inbox): nothing new.
    assert not person_hold.take(job, hold(version=6))


def test_at_the_step_boundary_a_step_that_went_on_is_held_at_the_next() -> None:
    job = job_at(Step.CONFIGURE)
    # The configure step completed while the hold arrived: its result is kept.
    job.config_version = 2
    job.advance(LATER)
    assert person_hold.take(job, hold())
    assert person_hold.stop_at_boundary(job, LATER)
    assert (job.state, job.step, job.reason, job.config_version) == (
        JobState.HELD,
        Step.TEST,
        PERSON_HOLD,
        2,
    )


def test_at_the_step_boundary_a_step_to_retry_is_held_at_it() -> None:
    job = job_at(Step.CONFIGURE)
    job.retry_later("DEVICE_AGENT_UNAVAILABLE", "busy", LATER, RetryPolicy())
    assert person_hold.take(job, hold())
    assert person_hold.stop_at_boundary(job, LATER)
    assert (job.state, job.step, job.reason) == (JobState.HELD, Step.CONFIGURE, PERSON_HOLD)


def test_at_the_step_boundary_a_step_that_held_the_job_keeps_its_reason() -> None:
    job = job_at(Step.TEST)
    job.hold(TESTS_FAILED, LATER, detail="performance below the profile")
    assert person_hold.take(job, hold())
    assert not person_hold.stop_at_boundary(job, LATER)
    assert (job.reason, fallout.in_fallout(job)) == (TESTS_FAILED, True)
    # GetJob says both.
    assert person_hold.shown_detail(job) == (
        "performance below the profile; the order is also held by clerk-dev (CUSTOMER_REQUEST)"
    )


def test_resume_runs_the_job_from_the_step_it_was_held_at_fitness_first() -> None:
    job = held_by_person(Step.TEST)
    job.rounds_done = 1
    assert person_hold.take(job, resume())
    assert not job.person_held
    assert person_hold.release(job, recovered(), LATER) is Release.RESUMED
    assert (job.state, job.step, job.reason, job.detail) == (JobState.RUNNING, Step.TEST, "", "")
    assert job.next_attempt_at == LATER and job.step_attempts == 0
    assert job.rounds_done == 1
    # Before its next device step it asks CheckFitness, as after a device hold.
    assert device_health.needs_fitness(job)


def test_resume_of_a_job_held_at_prechecks_lets_the_checklist_ask() -> None:
    job = held_by_person(Step.PRECHECKS)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, None, LATER) is Release.RESUMED
    assert job.state is JobState.RUNNING and not job.recheck_fitness


def test_resume_while_the_device_is_abnormal_holds_the_job_for_the_device() -> None:
    job = held_by_person(Step.ACTIVATE)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, abnormal(), LATER) is Release.HELD_FOR_DEVICE
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.HELD,
        Step.ACTIVATE,
        DEVICE_ABNORMAL,
        "ALM-7",
    )
    assert not fallout.in_fallout(job)


def test_resume_at_notify_goes_on_whatever_the_device_says() -> None:
    # The device work is done: an abnormal device no longer stops the notice.
    job = held_by_person(Step.NOTIFY)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, abnormal(), LATER) is Release.RESUMED
    assert (job.state, job.step) == (JobState.RUNNING, Step.NOTIFY)


def test_a_job_held_for_its_device_and_a_person_runs_only_once_both_are_lifted() -> None:
    # The device first, then the person: the device recovering leaves it held for the person.
    job = job_at(Step.TEST)
    assert device_health.hold_now(job, abnormal(), T0)
    assert person_hold.take(job, hold())
    assert job.reason == DEVICE_ABNORMAL
    assert "also held by clerk-dev (CUSTOMER_REQUEST)" in person_hold.shown_detail(job)
    assert device_health.resume(job, LATER)
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.HELD,
        Step.TEST,
        PERSON_HOLD,
        "",
    )
    assert not fallout.in_fallout(job)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, recovered(), LATER) is Release.RESUMED
    assert job.state is JobState.RUNNING and device_health.needs_fitness(job)

    # The person first, then the device: the person's resume leaves it held for the device
    # (told again, so that intake holds the order the person resumed).
    job = held_by_person(Step.TEST)
    assert not device_health.hold_now(job, abnormal(), T0)  # held already
    assert person_hold.take(job, resume())
    assert person_hold.release(job, abnormal(), LATER) is Release.HELD_FOR_DEVICE
    assert job.reason == DEVICE_ABNORMAL
    assert device_health.resume(job, LATER)
    assert job.state is JobState.RUNNING

    # The device turned abnormal while held by the person, and recovered before the resume.
    job = held_by_person(Step.CONFIGURE)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, recovered(), LATER) is Release.RESUMED


def test_resume_leaves_a_job_held_for_something_else_held() -> None:
    job = job_at(Step.TEST)
    job.hold(TESTS_FAILED, LATER)
    assert person_hold.take(job, hold())
    assert person_hold.take(job, resume())
    assert person_hold.release(job, None, LATER) is Release.STILL_HELD
    assert (job.state, job.reason, fallout.in_fallout(job)) == (JobState.HELD, TESTS_FAILED, True)
    assert person_hold.shown_detail(job) == job.detail


def test_resume_of_a_running_or_finished_job_changes_nothing_but_the_version() -> None:
    job = job_at(Step.TEST)
    assert person_hold.take(job, resume())
    assert person_hold.release(job, None, LATER) is Release.NOTHING
    assert job.state is JobState.RUNNING and job.person_hold_version == 3
