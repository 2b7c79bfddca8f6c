"""device-monitor's word on a device and the jobs on it, without I/O: a job stops at once (or
at its step boundary) on device.abnormal, naming the alarm and out of the fallout queue;
device.recovered resumes it from the step it was held at and has it ask CheckFitness before
its next device step; an older word never overrides a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_provisioning.domain import device_health, fallout
from orderline_provisioning.domain.device_health import DeviceAlarm, DeviceWord
from orderline_provisioning.domain.job import (
    DEVICE_ABNORMAL,
    NO_CUSTOMER_CONTACT,
    TEST_RESULT_INVALID,
    TESTS_FAILED,
    Job,
)
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2026, 12, 7, 8, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def job_at(step: Step) -> Job:
    job = Job("job-1", "ord-1", "CPE-0007", "broadband_install", "300M", "zh-CN", created_at=T0)
    while job.step is not step:
        job.advance(T0)
    return job


def abnormal(at: datetime = T0, event_id: str = "0190-a") -> DeviceWord:
    return DeviceWord(
        "CPE-0007",
        abnormal=True,
        event_time=at,
        event_id=event_id,
        alarms=(DeviceAlarm("ALM-7", "thermal", "critical"), DeviceAlarm("ALM-8", "line", "major")),
        severity="critical",
        rules_version="2026.12.06-1",
    )


def recovered(at: datetime = LATER, event_id: str = "0190-b") -> DeviceWord:
    return DeviceWord("CPE-0007", abnormal=False, event_time=at, event_id=event_id)


def test_the_word_names_the_first_alarm_its_category_and_the_rules() -> None:
    word = abnormal()
    assert word.alarm_id == "ALM-7"
    assert word.detail == (
        "device abnormal: thermal alarm ALM-7 (critical); line alarm ALM-8 (major) "
        "[rules 2026.12.06-1]"
    )
    maintenance = DeviceWord("CPE-0007", True, T0, "e", ticket_id="TT-1")
    assert maintenance.alarm_id == "" and "ticket TT-1" in maintenance.detail


def test_a_newer_word_supersedes_an_older_never_the_reverse() -> None:
    assert abnormal().supersedes(None)
    assert recovered().supersedes(abnormal())
    assert not abnormal().supersedes(recovered())
    # The same event again is not newer (the inbox drops it first anyway).
    assert not abnormal().supersedes(abnormal())
    # Same time: the event ids (UUIDv7) order them.
    assert abnormal(T0, "0190-b").supersedes(abnormal(T0, "0190-a"))


@pytest.mark.parametrize("step", [Step.PRECHECKS, Step.CONFIGURE, Step.TEST, Step.ACTIVATE])
def test_a_running_job_with_device_work_ahead_is_held_at_once(step: Step) -> None:
    job = job_at(step)
    assert device_health.hold_now(job, abnormal(), LATER)
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.HELD,
        step,
        DEVICE_ABNORMAL,
        "ALM-7",
    )
    assert "thermal alarm ALM-7" in job.detail
    # Not fallout: it resumes by itself.
    assert job.fallout_at is None and not fallout.in_fallout(job)


def test_nothing_to_stop_after_the_device_work_or_on_a_held_or_recovered_word() -> None:
    notifying = job_at(Step.NOTIFY)
    assert not device_health.hold_now(notifying, abnormal(), LATER)
    assert notifying.state is JobState.RUNNING
    held = job_at(Step.TEST)
    held.hold(TESTS_FAILED, T0)
    assert not device_health.hold_now(held, abnormal(), LATER)
    assert held.reason == TESTS_FAILED
    running = job_at(Step.CONFIGURE)
    assert not device_health.hold_now(running, recovered(), LATER)


def test_a_completed_step_is_kept_and_the_job_held_at_the_next_step() -> None:
    job = job_at(Step.CONFIGURE)
    job.config_version = 6
    job.advance(T0)  # the configure step completed while the device overheated
    assert device_health.stop_at_boundary(job, Step.CONFIGURE, abnormal(), LATER)
    assert (job.state, job.step, job.reason) == (JobState.HELD, Step.TEST, DEVICE_ABNORMAL)
    assert job.config_version == 6


def test_a_step_to_retry_is_held_at_that_step() -> None:
    job = job_at(Step.ACTIVATE)
    job.retry_later("DEVICE_AGENT_UNAVAILABLE", "down", T0, RetryPolicy())
    assert device_health.stop_at_boundary(job, Step.ACTIVATE, abnormal(), LATER)
    assert (job.state, job.step, job.reason) == (JobState.HELD, Step.ACTIVATE, DEVICE_ABNORMAL)


def test_a_device_step_that_failed_meanwhile_is_the_devices_doing_not_fallout() -> None:
    job = job_at(Step.TEST)
    job.rounds_done = 3
    job.hold(TESTS_FAILED, T0, detail="environmental: too hot")
    assert fallout.in_fallout(job)
    assert device_health.stop_at_boundary(job, Step.TEST, abnormal(), LATER)
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.HELD,
        Step.TEST,
        DEVICE_ABNORMAL,
        "ALM-7",
    )
    assert "environmental: too hot" in job.detail
    assert not fallout.in_fallout(job)
    # Its rounds stay counted: a resumed test step numbers its rounds (and keys) after them.
    assert job.rounds_done == 3


def test_the_boundary_leaves_alone_what_the_device_does_not_explain() -> None:
    # No word, or the device recovered.
    fine = job_at(Step.CONFIGURE)
    fine.advance(T0)
    assert not device_health.stop_at_boundary(fine, Step.CONFIGURE, None, LATER)
    assert not device_health.stop_at_boundary(fine, Step.CONFIGURE, recovered(), LATER)
    assert fine.state is JobState.RUNNING
    # Prechecks decide by CheckFitness, which answered after the word.
    checked = job_at(Step.PRECHECKS)
    checked.advance(T0)
    assert not device_health.stop_at_boundary(checked, Step.PRECHECKS, abnormal(), LATER)
    # A failed job rolled its device back already; a missing phone is no device fault.
    failed = job_at(Step.TEST)
    failed.fail(TEST_RESULT_INVALID, T0)
    assert not device_health.stop_at_boundary(failed, Step.TEST, abnormal(), LATER)
    no_phone = job_at(Step.CONFIGURE)
    no_phone.hold(NO_CUSTOMER_CONTACT, T0)
    assert not device_health.stop_at_boundary(no_phone, Step.CONFIGURE, abnormal(), LATER)
    assert no_phone.reason == NO_CUSTOMER_CONTACT
    # Past the device work: notify goes on.
    activated = job_at(Step.ACTIVATE)
    activated.advance(T0)
    assert not device_health.stop_at_boundary(activated, Step.ACTIVATE, abnormal(), LATER)
    assert (activated.state, activated.step) == (JobState.RUNNING, Step.NOTIFY)


def test_recovery_resumes_from_the_step_held_at_and_rechecks_fitness_first() -> None:
    job = job_at(Step.CONFIGURE)
    job.advance(T0)
    device_health.stop_at_boundary(job, Step.CONFIGURE, abnormal(), T0)
    assert device_health.resume(job, LATER)
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.RUNNING,
        Step.TEST,
        "",
        "",
    )
    assert job.next_attempt_at == LATER and job.step_started_at == LATER
    assert job.recheck_fitness and device_health.needs_fitness(job)
    # A second recovery finds nothing held: no change.
    assert not device_health.resume(job, LATER + timedelta(seconds=1))


def test_a_job_held_at_its_checklist_resumes_there_and_its_checklist_asks_fitness() -> None:
    job = job_at(Step.PRECHECKS)
    job.hold(DEVICE_ABNORMAL, T0, alarm_id="ALM-7")
    assert device_health.resume(job, LATER)
    assert (job.state, job.step) == (JobState.RUNNING, Step.PRECHECKS)
    assert not job.recheck_fitness and not device_health.needs_fitness(job)


def test_recovery_leaves_alone_jobs_not_held_for_the_device() -> None:
    fallout_job = job_at(Step.TEST)
    fallout_job.hold(TESTS_FAILED, T0)
    assert not device_health.resume(fallout_job, LATER)
    assert fallout_job.state is JobState.HELD and fallout_job.reason == TESTS_FAILED
    running = job_at(Step.TEST)
    assert not device_health.resume(running, LATER)
    cancelling = job_at(Step.TEST)
    cancelling.hold(DEVICE_ABNORMAL, T0)
    cancelling.cancellation_state = "requested"
    assert not device_health.resume(cancelling, LATER)


def test_notify_needs_no_fitness_and_a_fallout_retry_asks_it() -> None:
    job = job_at(Step.NOTIFY)
    job.recheck_fitness = True
    assert not device_health.needs_fitness(job)
    retried = job_at(Step.CONFIGURE)
    retried.hold("CONFIGURE_REJECTED", T0)
    fallout.retry(retried, LATER)
    assert device_health.needs_fitness(retried)
