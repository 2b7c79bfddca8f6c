"""The decision about a device that lost the job's configuration before its activation
(domain/config_loss.py), and the job's transition back to its configure step: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_provisioning.domain import config_loss
from orderline_provisioning.domain.config_loss import Verdict
from orderline_provisioning.domain.fallout import texts
from orderline_provisioning.domain.job import AdjustmentInHand, Job
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import JobState, Step

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def test_the_device_keeps_the_configuration_when_its_version_is_the_jobs() -> None:
    assert config_loss.kept(3, 3)
    assert not config_loss.kept(3, 1)  # the factory configuration
    assert not config_loss.kept(3, 5)  # another configuration altogether
    # Nothing applied by the job (nothing to lose), or the agent does not say.
    assert config_loss.kept(None, 1)
    assert config_loss.kept(3, None)


def test_the_first_loss_configures_again_and_the_next_goes_to_a_person() -> None:
    assert config_loss.decide(0) is Verdict.RECONFIGURE
    assert config_loss.decide(1) is Verdict.HOLD
    assert config_loss.decide(5) is Verdict.HOLD
    assert config_loss.decide(1, limit=2) is Verdict.RECONFIGURE


def test_each_configuration_after_a_loss_has_a_key_of_its_own() -> None:
    assert config_loss.reconfigure_suffix(0) == ""
    assert config_loss.reconfigure_suffix(1) == ":reconfigure1"
    assert config_loss.reconfigure_suffix(2) == ":reconfigure2"


def test_the_details_say_what_the_device_runs_and_how_often_it_lost_it() -> None:
    assert config_loss.lost_detail(3, 1) == (
        "the device runs configuration version 1 (the factory configuration), not version 3 "
        "which the job applied"
    )
    assert config_loss.lost_detail(3, None, "refused (NOT_CONFIGURED)") == (
        "the device no longer runs the configuration the job applied: refused (NOT_CONFIGURED)"
    )
    assert config_loss.held_detail(2, "x").startswith(
        "the device lost the job's configuration twice before its activation"
    )
    assert "3 times" in config_loss.held_detail(3, "x")


def test_the_clerk_reads_the_reason_in_english_and_chinese() -> None:
    assert texts("DEVICE_CONFIG_LOST") == {
        "en": "the device lost its configuration again before activation",
        "zh-CN": "设备在开通前再次丢失配置",
    }


def _job_at_activate() -> Job:
    job = Job("job-1", "ord-1", "CPE-0001", "broadband_install", "300M", "zh-CN", created_at=T0)
    while job.step is not Step.ACTIVATE:
        job.advance(T0)
    job.config_version = 3
    return job


def test_configure_again_sends_the_job_back_to_configure_at_once() -> None:
    job = _job_at_activate()
    later = T0 + timedelta(minutes=5)
    job.retry_later("DEVICE_AGENT_UNAVAILABLE", "busy", T0, RetryPolicy())
    job.adjustment = AdjustmentInHand("job-1:adjust:1", 1, {"a": "b"})
    job.configure_again(later)
    assert (job.step, job.state, job.config_losses) == (Step.CONFIGURE, JobState.RUNNING, 1)
    assert job.next_attempt_at == job.step_started_at == later
    assert job.step_attempts == 0 and not job.reason and job.adjustment is None
    # What the device carried for the job is still known (a rollback goes to before the job).
    assert job.config_version == 3


def test_configure_again_needs_a_running_job() -> None:
    job = _job_at_activate()
    job.hold("ACTIVATE_REJECTED", T0)
    with pytest.raises(ValueError):
        job.configure_again(T0)
