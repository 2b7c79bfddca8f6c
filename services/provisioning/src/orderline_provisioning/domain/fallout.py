# ruff: noqa: RUF001
"""The fallout queue (回落队列): jobs that need a person, and what a person may do with them.

A job is in fallout while it is held for a reason no automatic step can resolve (tests still
failing after the adjustment loop, a peer refusing a step, the device unreachable, the
customer not reached, a failed item of the checklist). A hold for an abnormal device is not
fallout: device-monitor's recovery resumes it (domain/device_health.py).

The actions, each refused with `NotInFallout` on a job not in fallout:
- retry: the job runs again from the step that failed;
- skip: one failed test is skipped with a reason (engineers only: the API's roles), four-eyes:
  one engineer asks, another approves, and only then is it skipped; when no
  other test failed, the job goes on to activation;
- roll back: the device returns to the configuration before the job (the job's rollback
  key); the job stays in fallout and a retry configures the device afresh;
- abort: the job ends failed (FALLOUT_ABORTED), its configuration rolled back first.

Pure: the application makes the calls and commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from orderline_provisioning.domain.job import DEVICE_HOLD_REASONS, PERSON_HOLD, Job, SkippedTest
from orderline_provisioning.domain.steps import JobState, Step

# The reason a job ends with when a person aborts it (provisioning.job_failed).
FALLOUT_ABORTED = "FALLOUT_ABORTED"
# The longest reason a person may give.
MAX_REASON_LENGTH = 500

RETRY = "retry"
SKIP = "skip"
ROLLBACK = "rollback"
ABORT = "abort"

# What the queue shows for the common reasons, in English and zh-CN; others by their code.
_TEXTS: Mapping[str, tuple[str, str]] = {
    "TESTS_FAILED": ("tests still failing after the adjustment loop", "调整后测试仍未通过"),
    "DEVICE_UNREACHABLE": ("the device did not answer; retries used up", "设备无响应，重试已用完"),
    "NO_CUSTOMER_CONTACT": ("no usable customer contact", "无可用的客户联系方式"),
    "CUSTOMER_NOT_REACHED": ("customer not reached", "未能联系到客户"),
    "CONFIGURE_REJECTED": ("the device refused the configuration", "设备拒绝了配置"),
    "TEST_REJECTED": ("the device refused a test", "设备拒绝了测试"),
    "ACTIVATE_REJECTED": ("the network refused the activation", "网络侧拒绝了开通"),
    "DEVICE_CONFIG_LOST": (
        "the device lost its configuration again before activation",
        "设备在开通前再次丢失配置",
    ),
    "NOTIFY_REJECTED": ("the gateway refused the notification", "短信网关拒绝了通知"),
    "CANCEL_REJECTED": ("the device refused the rollback", "设备拒绝了回退"),
    "PRECHECKS_REJECTED": ("a pre-operation check was refused", "作业前检查被拒绝"),
    "NO_TELEMETRY": ("no telemetry from the device yet", "尚未收到设备遥测数据"),
    "DEVICE_MONITOR_UNAVAILABLE": ("device-monitor did not answer", "设备监控无响应"),
    "DEVICE_AGENT_UNAVAILABLE": ("the device agent did not answer", "设备代理无响应"),
    "DEVICE_UNFIT": ("the device is not fit for work", "设备状态不适合作业"),
    "UNKNOWN_DEVICE": ("the fleet does not know the device", "设备不存在"),
    "DEVICE_MODEL_NOT_ALLOWED": (
        "the device model is not allowed for the business type",
        "设备型号不适用于该业务类型",
    ),
    "FIRMWARE_TOO_OLD": ("the device firmware is too old", "设备固件版本过低"),
    "NO_WORK_INSTRUCTION": ("no work instruction for the business type", "该业务类型无作业指导书"),
    "OPERATOR_NOT_CERTIFIED": (
        "the operator is not certified for the business type",
        "操作员未获该业务类型资质",
    ),
}


class NotInFallout(Exception):
    """A fallout action on a job that is not in the fallout queue (or not in a state the
    action applies to)."""

    def __init__(self, job: Job, detail: str = "") -> None:
        state = f"{job.state.value} at {job.step.value}"
        reason = f" ({job.reason})" if job.reason else ""
        super().__init__(
            detail or f"job {job.id} is not in the fallout queue: it is {state}{reason}"
        )
        self.job = job


def is_fallout_reason(reason: str) -> bool:
    return reason not in DEVICE_HOLD_REASONS and reason != PERSON_HOLD


def in_fallout(job: Job) -> bool:
    return job.state is JobState.HELD and job.fallout_at is not None


def texts(reason: str) -> dict[str, str]:
    en, zh = _TEXTS.get(reason, (reason, reason))
    return {"en": en, "zh-CN": zh}


def actions(job: Job) -> list[str]:
    """The actions that apply to the job in fallout."""
    if not in_fallout(job):
        return []
    out = [RETRY]
    if job.step is Step.TEST and failed_tests(job):
        out.append(SKIP)
    if job.touched_device and not job.rolled_back:
        out.append(ROLLBACK)
    out.append(ABORT)
    return out


def failed_tests(job: Job) -> list[str]:
    """The kinds whose last result failed and whose skip nobody approved."""
    return [r.kind for r in job.test_results if not r.passed and r.kind not in job.skipped_kinds]


def require_fallout(job: Job) -> None:
    if not in_fallout(job):
        raise NotInFallout(job)


def retry(job: Job, now: datetime) -> None:
    """The job runs again from the step that failed, at once."""
    require_fallout(job)
    job.fallout_at = None
    job.fallout_retries += 1
    # Never onto a device device-monitor reports abnormal (domain/device_health.py).
    job.run_again(now)
    if job.step is Step.NOTIFY:
        # The customer not reached: a fresh round of attempts, on new keys (`:retry<n>`).
        job.notify_failures = 0
        job.notify_undelivered = 0


@dataclass(frozen=True)
class SkipOutcome:
    # True: no failed test is left, the job goes on to activation.
    tests_done: bool
    # True: the skip is asked for and waits for another engineer's approval.
    awaiting_approval: bool = False


class SameEngineer(Exception):
    """Four-eyes: the engineer who asked for a skip tried to approve it."""

    def __init__(self, job: Job, kind: str, by: str) -> None:
        super().__init__(
            f"four-eyes: {by} asked to skip the {kind} test of job {job.id} and cannot approve "
            "it; another engineer must"
        )


def skip(job: Job, kind: str, reason: str, by: str, now: datetime) -> SkipOutcome:
    """Four-eyes: the first engineer asks to skip the failed test `kind` (with the reason);
    another engineer's skip of the same test approves it, and only then is it skipped. When it
    was the last failed one, the job leaves the queue and goes on to activation. Raises
    NotInFallout when the job is not in fallout after its tests, ValueError when `kind` is not
    one of its failed tests, SameEngineer when the asker tries to approve."""
    require_fallout(job)
    failed = failed_tests(job)
    if job.step is not Step.TEST or not failed:
        raise NotInFallout(
            job, f"job {job.id} is in fallout for {job.reason or job.step.value}, not for its tests"
        )
    if kind not in failed:
        raise ValueError(f"not a failed test of the job: {', '.join(failed)}")
    asked = job.skipped_tests.get(kind)
    job.updated_at = now
    if asked is None:
        job.skipped_tests = {**job.skipped_tests, kind: SkippedTest(kind, reason, by, now)}
        return SkipOutcome(tests_done=False, awaiting_approval=True)
    if asked.by == by:
        raise SameEngineer(job, kind, by)
    job.skipped_tests = {
        **job.skipped_tests,
        kind: SkippedTest(kind, asked.reason, asked.by, asked.at, by, now),
    }
    if len(failed) > 1:
        return SkipOutcome(tests_done=False)
    job.state = JobState.RUNNING
    job.fallout_at = None
    job.reason = ""
    job.detail = ""
    job.advance(now)
    return SkipOutcome(tests_done=True)


def rolled_back(job: Job, version: int | None, now: datetime) -> None:
    """After the rollback action: the device carries the configuration before the job; a
    retry configures it again (under the next retry's keys)."""
    require_fallout(job)
    job.rolled_back_to = version
    if version is not None:
        job.step = Step.CONFIGURE
    job.updated_at = now


def abort(job: Job, reason: str, by: str, now: datetime) -> None:
    """The job ends failed; the application rolled the device back first."""
    require_fallout(job)
    job.state = JobState.FAILED
    job.fallout_at = None
    job.reason = FALLOUT_ABORTED
    job.detail = f"aborted by {by}: {reason}"
    job.updated_at = now
