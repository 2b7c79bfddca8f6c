"""The provisioning job: one per approved order, advanced one step at a time.

Every transition method here changes the job in memory only; the application commits the job
together with the events of the transition in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import FIRST_STEP, JobState, Step, next_step

if TYPE_CHECKING:
    # domain/checklist.py reads this module's reason codes (through prechecks.py).
    from orderline_provisioning.domain.checklist import ChecklistItem

# Reason codes (UPPER_SNAKE), carried by job_held / job_failed events and shown on the job.
DEVICE_ABNORMAL = "DEVICE_ABNORMAL"
DEVICE_UNFIT = "DEVICE_UNFIT"
NO_TELEMETRY = "NO_TELEMETRY"
DEVICE_MONITOR_UNAVAILABLE = "DEVICE_MONITOR_UNAVAILABLE"
TESTS_FAILED = "TESTS_FAILED"
# A device reported a test result no real device can give (a value out of range, a missing
# measurement): an error to look into, never a pass.
TEST_RESULT_INVALID = "TEST_RESULT_INVALID"
NO_CUSTOMER_CONTACT = "NO_CUSTOMER_CONTACT"
# The device agent did not answer a device step for `StepPolicy.unreachable_after` tries.
DEVICE_UNREACHABLE = "DEVICE_UNREACHABLE"
# Holds that end by themselves when device-monitor reports the device recovered
# (device.recovered, domain/device_health.py); every other hold waits for a person in the
# fallout queue (domain/fallout.py).
DEVICE_HOLD_REASONS = frozenset({DEVICE_ABNORMAL})
# The device lost the job's configuration before its activation once more after the job had
# configured it again (domain/config_loss.py): a person looks (the fallout queue).
DEVICE_CONFIG_LOST = "DEVICE_CONFIG_LOST"
# A person (clerk, engineer, maintenance) held the order (order.hold_requested): the job waits
# at its step until they resume it (order.resume_requested; domain/person_hold.py). Not in the
# fallout queue either: the person who held it is the one to act, through the order.
PERSON_HOLD = "PERSON_HOLD"


def rejected_reason(step: Step) -> str:
    """A peer refused a call of `step` for good (not a transient failure): a person must act."""
    return f"{step.value.upper()}_REJECTED"


@dataclass(frozen=True)
class Finding:
    """One criterion of the test profile against what the device measured. `problem` is empty
    when met; else BELOW_MIN, ABOVE_MAX, MISSING (not reported) or OUT_OF_RANGE (a value no
    real device can have: a broken report)."""

    measurement: str
    value: float | None
    min: float | None = None
    max: float | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def to_record(self) -> dict[str, object]:
        return {
            "measurement": self.measurement,
            "value": self.value,
            "min": self.min,
            "max": self.max,
            "problem": self.problem,
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, object]) -> Finding:
        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(str(raw["measurement"]), num("value"), num("min"), num("max"),
                   str(raw.get("problem") or ""))  # fmt: skip


@dataclass(frozen=True)
class TestResult:
    """A device test as judged against the business type's test profile, with what the device
    measured. `invalid`: the report itself was broken (a value out of any real range, a
    measurement missing), which is an error, never a pass."""

    __test__ = False  # not a pytest test class

    kind: str
    passed: bool
    detail: str
    measurements: Mapping[str, float] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    # 1 for the first run, 2 after the first adjustment, …
    round: int = 1
    invalid: bool = False
    # The device's own verdict (a pass needs it and the profile's criteria).
    device_passed: bool = True
    # The settings applied after this result because it failed (empty: none).
    adjustment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AdjustmentInHand:
    """The adjustment loop's position between its commits: after a failing round the job
    commits the adjustment it decided (with the round's results) before the device gets it,
    then the apply (`applied`), then the next round. A process killed after the device applied
    it resumes here: the same key again (a no-op on the device), recorded once, and the next
    round is tested on the adjusted device. Without this, the repeat of the whole loop found
    the device already adjusted, passed at round 1 and never recorded the adjustment."""

    key: str
    # The loop's round (1-based, counted from the loop's start) after which it is applied.
    round: int
    settings: Mapping[str, str]
    applied: bool = False

    def to_record(self) -> dict[str, object]:
        return {
            "key": self.key,
            "round": self.round,
            "settings": dict(self.settings),
            "applied": self.applied,
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, object] | None) -> AdjustmentInHand | None:
        if not raw:
            return None
        settings = raw.get("settings")
        return cls(
            key=str(raw["key"]),
            round=int(str(raw["round"])),
            settings=dict(settings) if isinstance(settings, Mapping) else {},
            applied=bool(raw.get("applied")),
        )


@dataclass(frozen=True)
class SkippedTest:
    """A test an engineer asked to skip from the fallout queue, with who and why; skipped only
    once another engineer approved it (four-eyes: domain/fallout.py)."""

    kind: str
    reason: str
    by: str
    at: datetime
    approved_by: str = ""
    approved_at: datetime | None = None

    @property
    def approved(self) -> bool:
        return bool(self.approved_by)

    def to_record(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else "",
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, str]) -> SkippedTest:
        at = datetime.fromisoformat(raw["at"])
        if "approved_by" not in raw:
            # Skipped before four-eyes: one engineer's skip was the decision then.
            return cls(raw["kind"], raw["reason"], raw["by"], at, raw["by"], at)
        approved_at = raw.get("approved_at") or ""
        return cls(
            raw["kind"],
            raw["reason"],
            raw["by"],
            at,
            raw["approved_by"],
            datetime.fromisoformat(approved_at) if approved_at else None,
        )


@dataclass
class Job:
    id: str
    order_id: str
    device_id: str
    business_type: str
    plan: str
    locale: str
    created_at: datetime
    # W3C trace context of the span that accepted the order: every step resumes under it.
    trace_headers: Mapping[str, str] = field(default_factory=dict)
    state: JobState = JobState.RUNNING
    step: Step = FIRST_STEP
    reason: str = ""
    detail: str = ""
    alarm_id: str = ""
    voucher_id: str = ""
    config_version: int | None = None
    # The device's configuration version before this job first changed it (what a rollback
    # returns to); None until the job configured the device.
    base_config_version: int | None = None
    # The network side's record of the activation (or, for a termination, the deactivation).
    network_action: str = ""
    activation_id: str = ""
    activated_at: datetime | None = None
    # Failed tries over the job's life, and in a row of the step in hand.
    attempts: int = 0
    step_attempts: int = 0
    # Failed notify attempts (sends the gateway refused, messages it reported undelivered):
    # they decide the channel and, at the bound, CUSTOMER_NOT_REACHED (domain/notification.py);
    # and the messages reported undelivered (each next message gets a new key).
    notify_failures: int = 0
    notify_undelivered: int = 0
    delivery_id: str = ""
    channel: str = ""
    test_results: list[TestResult] = field(default_factory=list)
    # The principal the device work runs under (its certification is on the checklist):
    # assigned when the worker first takes the job up (app/worker.py).
    operator: str = ""
    # The pre-operation checklist as last checked (domain/checklist.py).
    checklist: list[ChecklistItem] = field(default_factory=list)
    # Not stored: whether `operator` held a certification for the business type when the
    # worker claimed the job (read in the claim's transaction; None: not read).
    operator_certified: bool | None = None
    step_started_at: datetime | None = None
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None
    # The order's cancellation, once it reached the job (domain/cancellation.py): the
    # request's id, reason and time, what became of it, and the compensation done.
    cancellation_id: str = ""
    cancel_reason: str = ""
    cancel_requested_at: datetime | None = None
    cancellation_state: str = ""
    cancel_decided_at: datetime | None = None
    # The configuration version the cancellation's rollback left in force; None: none.
    rolled_back_to: int | None = None
    compensation: str = ""
    # The fallout queue (domain/fallout.py): since when the job waits for a person (None: not
    # in fallout), the retries a person asked for, the tests a person skipped, and the test
    # rounds recorded so far (a retry's rounds are numbered after them).
    fallout_at: datetime | None = None
    fallout_retries: int = 0
    skipped_tests: Mapping[str, SkippedTest] = field(default_factory=dict)
    rounds_done: int = 0
    # The adjustment loop's position while it runs (None otherwise; migration 0010).
    adjustment: AdjustmentInHand | None = None
    # How often the device was found without the job's configuration before its activation
    # (domain/config_loss.py; migration 0011): each loss configures it again under its own key.
    config_losses: int = 0
    # Resumed after a device hold (or retried by a person): CheckFitness is asked again before
    # the next device step (domain/device_health.py).
    recheck_fitness: bool = False
    # A person's hold of the order (domain/person_hold.py), in force while `person_hold_reason`
    # (the hold's reason code, e.g. CUSTOMER_REQUEST) is set, whatever else holds the job: who
    # and when. Written only by the order's hold and resume events, never by a step's save.
    person_hold_reason: str = ""
    person_hold_by: str = ""
    person_held_at: datetime | None = None
    # The order's version of the last hold or resume taken (0: none): an older one delivered
    # late changes nothing; a step's save lands only while it is the one the worker loaded.
    person_hold_version: int = 0

    @property
    def person_held(self) -> bool:
        """A person's hold of the order is in force."""
        return bool(self.person_hold_reason)

    @property
    def skipped_kinds(self) -> frozenset[str]:
        """The tests skipped: asked by one engineer and approved by another (four-eyes)."""
        return frozenset(kind for kind, t in self.skipped_tests.items() if t.approved)

    def __post_init__(self) -> None:
        if self.step_started_at is None:
            self.step_started_at = self.created_at
        if self.next_attempt_at is None:
            self.next_attempt_at = self.created_at
        if self.updated_at is None:
            self.updated_at = self.created_at

    @property
    def runnable(self) -> bool:
        return self.state is JobState.RUNNING and self.step is not Step.DONE

    def waited(self, now: datetime) -> timedelta:
        """How long the step in hand has been trying."""
        assert self.step_started_at is not None
        return now - self.step_started_at

    def _require_running(self) -> None:
        if not self.runnable:
            raise ValueError(f"job {self.id} is {self.state.value} at {self.step.value}")

    def advance(self, now: datetime) -> Step:
        """The step in hand is done: move to the next; the job completes after notify."""
        self._require_running()
        self.step = next_step(self.step)
        self.step_attempts = 0
        self.reason = ""
        self.detail = ""
        self.step_started_at = now
        self.next_attempt_at = now
        self.updated_at = now
        if self.step is Step.DONE:
            self.state = JobState.COMPLETED
        return self.step

    def stay(self, now: datetime) -> None:
        """The step made progress it committed and goes on at once (the adjustment loop, one
        commit per change to the device)."""
        self._require_running()
        self.step_attempts = 0
        self.reason = ""
        self.detail = ""
        self.next_attempt_at = now
        self.updated_at = now

    def configure_again(self, now: datetime) -> None:
        """The device lost the job's configuration before its activation (domain/config_loss.py):
        back to the configure step, at once, under the next key; the tests run again after it
        (their rounds numbered after those recorded)."""
        self._require_running()
        self.config_losses += 1
        self.step = Step.CONFIGURE
        self.adjustment = None
        self.step_attempts = 0
        self.reason = ""
        self.detail = ""
        self.step_started_at = now
        self.next_attempt_at = now
        self.updated_at = now

    @property
    def rolled_back(self) -> bool:
        """The device carries the configuration it had before the job (rolled back since the
        job last changed it)."""
        return self.rolled_back_to is not None and self.config_version == self.rolled_back_to

    @property
    def key_suffix(self) -> str:
        """Appended to the keys of the device changes of a retried job (after a rollback, its
        configuration is applied again as a new change): `:retry<n>`."""
        return f":retry{self.fallout_retries}" if self.fallout_retries else ""

    @property
    def touched_device(self) -> bool:
        """Past the checklist: the device may carry this job's configuration."""
        return self.step is not Step.PRECHECKS

    def retry_later(
        self, reason: str, detail: str, now: datetime, policy: RetryPolicy, spread: float = 0.5
    ) -> datetime:
        """A transient failure: stay at this step and try again after a backoff."""
        self._require_running()
        self.attempts += 1
        self.step_attempts += 1
        self.reason = reason
        self.detail = detail
        self.next_attempt_at = now + policy.delay(self.step_attempts, spread)
        self.updated_at = now
        return self.next_attempt_at

    def hold(self, reason: str, now: datetime, *, alarm_id: str = "", detail: str = "") -> None:
        """Work stops at this step until a person acts."""
        self._require_running()
        self.state = JobState.HELD
        self.reason = reason
        self.alarm_id = alarm_id
        self.detail = detail
        self.updated_at = now
        # Every hold but an abnormal device's or a person's own waits for a person in the
        # fallout queue.
        self.fallout_at = None if reason in DEVICE_HOLD_REASONS or reason == PERSON_HOLD else now

    def run_again(self, now: datetime) -> None:
        """Back to running at its current step, at once, after a hold or from the fallout
        queue: its attempts start again, and the device's fitness is asked before its next
        device step, since the device may have changed meanwhile (prechecks ask it
        themselves)."""
        self.state = JobState.RUNNING
        self.reason = ""
        self.detail = ""
        self.alarm_id = ""
        self.step_attempts = 0
        self.step_started_at = now
        self.next_attempt_at = now
        self.updated_at = now
        self.recheck_fitness = self.step is not Step.PRECHECKS

    def hold_for_person(self, now: datetime) -> None:
        """The job waits for the person who held the order: from running (at its step), or
        from a hold that has ended while the person's is still in force (a device recovered)."""
        if self.state not in (JobState.RUNNING, JobState.HELD) or not self.person_held:
            raise ValueError(f"job {self.id} is {self.state.value}, not held by a person")
        self.state = JobState.HELD
        self.reason = PERSON_HOLD
        self.alarm_id = ""
        self.detail = person_hold_detail(self)
        self.fallout_at = None
        self.updated_at = now

    def fail(self, reason: str, now: datetime, *, detail: str = "") -> None:
        self._require_running()
        self.state = JobState.FAILED
        self.reason = reason
        self.detail = detail
        self.updated_at = now


def person_hold_detail(job: Job) -> str:
    """What the job shows while a person's hold stops it, e.g. `the order is held by clerk-dev
    (CUSTOMER_REQUEST) since 2026-12-08 09:30 UTC; the job waits at test until the order is
    resumed`."""
    since = f" since {job.person_held_at:%Y-%m-%d %H:%M} UTC" if job.person_held_at else ""
    who = job.person_hold_by or "a person"
    where = (
        "the service is active; the customer's notice waits"
        if job.step is Step.NOTIFY
        else f"the job waits at {job.step.value}"
    )
    return (
        f"the order is held by {who} ({job.person_hold_reason}){since}; {where} until the "
        "order is resumed"
    )
