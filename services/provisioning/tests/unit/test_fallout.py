"""The fallout queue's domain (no I/O): who is in it, what each action does to the job, and
what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_provisioning.domain import fallout
from orderline_provisioning.domain.job import (
    DEVICE_ABNORMAL,
    TESTS_FAILED,
    Job,
    SkippedTest,
    TestResult,
)
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def job_at(step: Step) -> Job:
    job = Job("job-1", "ord-1", "CPE-0001", "broadband_install", "300M", "zh-CN", created_at=T0)
    while job.step is not step:
        job.advance(T0)
    return job


def failed_tests_job(*failed: str) -> Job:
    job = job_at(Step.TEST)
    job.config_version, job.base_config_version = 5, 3
    job.test_results = [
        TestResult(kind, kind not in failed, "ok" if kind not in failed else "bad")
        for kind in ("functional", "performance", "security")
    ]
    job.hold(TESTS_FAILED, T0 + timedelta(minutes=1), detail="security: bad")
    return job


def test_every_hold_but_an_abnormal_devices_enters_the_queue() -> None:
    job = failed_tests_job("security")
    assert fallout.in_fallout(job) and job.fallout_at == T0 + timedelta(minutes=1)
    device = job_at(Step.CONFIGURE)
    device.hold(DEVICE_ABNORMAL, T0, alarm_id="ALM-1")
    assert not fallout.in_fallout(device)
    assert fallout.actions(device) == []


def test_actions_of_a_test_fallout() -> None:
    job = failed_tests_job("security")
    assert fallout.actions(job) == ["retry", "skip", "rollback", "abort"]
    assert fallout.texts("TESTS_FAILED")["zh-CN"] == "调整后测试仍未通过"
    assert fallout.texts("SOMETHING_ELSE") == {"en": "SOMETHING_ELSE", "zh-CN": "SOMETHING_ELSE"}


def test_retry_runs_the_failed_step_again_and_leaves_the_queue() -> None:
    job = failed_tests_job("security")
    fallout.retry(job, T0 + timedelta(hours=1))
    assert (job.state, job.step, job.reason) == (JobState.RUNNING, Step.TEST, "")
    assert job.fallout_at is None and job.fallout_retries == 1
    assert job.key_suffix == ":retry1"
    assert job.next_attempt_at == T0 + timedelta(hours=1)


def test_an_action_on_a_job_not_in_fallout_is_refused_and_changes_nothing() -> None:
    job = job_at(Step.CONFIGURE)
    for action in (
        lambda: fallout.retry(job, T0),
        lambda: fallout.skip(job, "security", "n/a", "eng", T0),
        lambda: fallout.rolled_back(job, 3, T0),
        lambda: fallout.abort(job, "no", "eng", T0),
    ):
        with pytest.raises(fallout.NotInFallout, match="not in the fallout queue"):
            action()
    assert (job.state, job.step, job.fallout_retries) == (JobState.RUNNING, Step.CONFIGURE, 0)


def test_skip_of_the_last_failed_test_goes_on_to_activation_once_another_engineer_approves() -> (
    None
):
    job = failed_tests_job("security")
    asked = fallout.skip(job, "security", "no management port on this model", "eng-1", T0)
    # Four-eyes: asked, not skipped; the asker cannot approve it.
    assert asked.awaiting_approval and not asked.tests_done
    assert fallout.in_fallout(job) and fallout.failed_tests(job) == ["security"]
    assert not job.skipped_tests["security"].approved
    with pytest.raises(fallout.SameEngineer, match="four-eyes"):
        fallout.skip(job, "security", "really", "eng-1", T0)
    done = fallout.skip(job, "security", "agreed", "eng-2", T0)
    assert done.tests_done and not done.awaiting_approval
    assert (job.state, job.step, job.fallout_at) == (JobState.RUNNING, Step.ACTIVATE, None)
    skipped = job.skipped_tests["security"]
    assert skipped.reason == "no management port on this model"
    assert (skipped.by, skipped.approved_by) == ("eng-1", "eng-2")


def test_a_skip_kept_before_four_eyes_stays_a_skip() -> None:
    raw = {"kind": "security", "reason": "old", "by": "eng-1", "at": T0.isoformat()}
    kept = SkippedTest.from_record(raw)
    assert kept.approved and kept.approved_by == "eng-1"
    again = SkippedTest.from_record(kept.to_record())
    assert again == kept
    asked = SkippedTest("security", "new", "eng-1", T0)
    assert SkippedTest.from_record(asked.to_record()) == asked and not asked.approved


def test_skip_with_other_failures_left_stays_in_the_queue() -> None:
    job = failed_tests_job("security", "performance")
    fallout.skip(job, "security", "n/a", "eng-1", T0)
    done = fallout.skip(job, "security", "n/a", "eng-2", T0)
    assert not done.tests_done and fallout.in_fallout(job)
    assert fallout.failed_tests(job) == ["performance"]


def test_skip_of_a_test_that_did_not_fail_is_refused() -> None:
    job = failed_tests_job("security")
    with pytest.raises(ValueError, match="not a failed test"):
        fallout.skip(job, "functional", "n/a", "eng-1", T0)
    assert job.skipped_tests == {}


def test_skip_on_a_fallout_not_about_tests_is_refused() -> None:
    job = job_at(Step.CONFIGURE)
    job.hold("CONFIGURE_REJECTED", T0)
    with pytest.raises(fallout.NotInFallout, match="not for its tests"):
        fallout.skip(job, "security", "n/a", "eng-1", T0)
    assert "skip" not in fallout.actions(job)


def test_rollback_keeps_the_job_in_the_queue_and_a_retry_configures_again() -> None:
    job = failed_tests_job("security")
    job.config_version = 3  # as the rollback record leaves it
    fallout.rolled_back(job, 3, T0)
    assert job.rolled_back and fallout.in_fallout(job) and job.step is Step.CONFIGURE
    assert "rollback" not in fallout.actions(job)
    fallout.retry(job, T0)
    assert job.step is Step.CONFIGURE and job.key_suffix == ":retry1"


def test_abort_ends_the_job_failed_with_who_and_why() -> None:
    job = failed_tests_job("security")
    fallout.abort(job, "customer withdrew", "eng-1", T0)
    assert (job.state, job.reason) == (JobState.FAILED, fallout.FALLOUT_ABORTED)
    assert job.detail == "aborted by eng-1: customer withdrew"
    assert not fallout.in_fallout(job)
