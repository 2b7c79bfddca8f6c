"""device-monitor's word on a device (device.abnormal, device.recovered) and what it means for
the jobs on it.

- **Abnormal**: a job with device work still ahead stops at once. A job no worker holds is held
  now (`hold_now`); a job whose step is in flight is held when that step is committed, at the
  step boundary (`stop_at_boundary`): the step's effects are kept (a configuration applied stays
  applied and recorded), and a step that failed meanwhile (tests failing on the overheating
  device, the agent unreachable, a refusal) counts as the device's doing, not as fallout. The
  hold is `DEVICE_ABNORMAL`, naming the first alarm, and is never in the fallout queue.
- **Recovered**: a job held for the device resumes at the step it was held at, its completed
  steps not run again (`resume`). Before its next device step it asks CheckFitness again
  (`recheck_fitness`): a device abnormal again holds it again, never configured meanwhile.
- An older event arriving after a newer one (a redelivery) changes nothing (`supersedes`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orderline_provisioning.domain.job import (
    DEVICE_ABNORMAL,
    DEVICE_HOLD_REASONS,
    NO_CUSTOMER_CONTACT,
    Job,
)
from orderline_provisioning.domain.steps import JobState, Step

# The steps that work on the device: a job with one of them ahead stops for an abnormal device.
DEVICE_WORK_STEPS = frozenset({Step.PRECHECKS, Step.CONFIGURE, Step.TEST, Step.ACTIVATE})
# The steps that call the device after the checklist: their failure an abnormal device explains
# (prechecks decide by CheckFitness, which answered after the word provisioning holds).
DEVICE_CALL_STEPS = frozenset({Step.CONFIGURE, Step.TEST, Step.ACTIVATE})


@dataclass(frozen=True)
class DeviceAlarm:
    alarm_id: str
    # Lower case: thermal, safety, …
    category: str
    # warning, minor, major, critical
    severity: str

    def to_record(self) -> dict[str, str]:
        return {"alarm_id": self.alarm_id, "category": self.category, "severity": self.severity}

    @classmethod
    def from_record(cls, raw: Mapping[str, str]) -> DeviceAlarm:
        return cls(raw["alarm_id"], raw.get("category", ""), raw.get("severity", ""))


@dataclass(frozen=True)
class DeviceWord:
    """device-monitor's last word on a device, as one event told it."""

    device_id: str
    abnormal: bool
    event_time: datetime
    event_id: str
    alarms: Sequence[DeviceAlarm] = field(default_factory=tuple)
    severity: str = ""
    rules_version: str = ""
    ticket_id: str = ""
    changed_at: datetime | None = None

    @property
    def alarm_id(self) -> str:
        """The alarm a held job names: the first raised (the root when raised together)."""
        return self.alarms[0].alarm_id if self.alarms else ""

    @property
    def detail(self) -> str:
        """What the job shows, e.g. `thermal alarm A1 (critical)`; under maintenance, the
        ticket."""
        if not self.abnormal:
            return "the device recovered"
        parts = [f"{a.category} alarm {a.alarm_id} ({a.severity})" for a in self.alarms]
        if self.ticket_id:
            parts.append(f"under maintenance (ticket {self.ticket_id})")
        body = "; ".join(parts) or "the device is abnormal"
        version = f" [rules {self.rules_version}]" if self.rules_version else ""
        return f"device abnormal: {body}{version}"

    def supersedes(self, stored: DeviceWord | None) -> bool:
        """Newer than what is stored (by the event's time, then its id: UUIDv7, in order)."""
        if stored is None:
            return True
        return (self.event_time, self.event_id) > (stored.event_time, stored.event_id)


def _device_work_ahead(job: Job) -> bool:
    return job.state is JobState.RUNNING and job.step in DEVICE_WORK_STEPS


def hold_now(job: Job, word: DeviceWord, now: datetime) -> bool:
    """device.abnormal reached a job no worker holds: a running job with device work ahead is
    held at its step. False: nothing to stop (held already, over, cancelling, notifying)."""
    if not word.abnormal or not _device_work_ahead(job):
        return False
    job.hold(DEVICE_ABNORMAL, now, alarm_id=word.alarm_id, detail=word.detail)
    return True


def stop_at_boundary(job: Job, step_ran: Step, word: DeviceWord | None, now: datetime) -> bool:
    """The worker commits `step_ran` of `job` (already changed by the step) while provisioning
    holds `word` about its device. True when the job is now held DEVICE_ABNORMAL instead:

    - the step completed and device work is still ahead: held at the next step;
    - the step is to be tried again (a transient failure): held at it;
    - a device step ended in a hold a person would have handled (tests failing, the agent
      unreachable, a refusal): held for the device instead, out of the fallout queue.

    Prechecks are left to their CheckFitness (newer than the word), a cancellation's rollback
    and a failed job (its failure rolled the device back) as they are, and so is a job held for
    the customer's contact (no fault of the device).
    """
    if word is None or not word.abnormal or step_ran in (Step.PRECHECKS, Step.CANCEL):
        return False
    if job.state is JobState.RUNNING:
        return hold_now(job, word, now)
    if (
        job.state is JobState.HELD
        and step_ran in DEVICE_CALL_STEPS
        and job.reason not in DEVICE_HOLD_REASONS
        and job.reason != NO_CUSTOMER_CONTACT
    ):
        job.state = JobState.HELD
        job.reason = DEVICE_ABNORMAL
        job.alarm_id = word.alarm_id
        job.detail = f"{word.detail}; the step failed meanwhile: {job.detail}"[:2000]
        job.fallout_at = None
        job.updated_at = now
        return True
    return False


def resume(job: Job, now: datetime) -> bool:
    """device.recovered: a job held for its device runs again from the step it was held at (its
    completed steps are not repeated; a test step numbers its rounds after those recorded). One
    that had touched the device asks CheckFitness before its next device step. A job whose
    order a person holds too stays held, now for that person (domain/person_hold.py): it runs
    once both are lifted. False: the job is not held for the device (held by a person's
    matter, over, cancelling)."""
    if job.state is not JobState.HELD or job.reason not in DEVICE_HOLD_REASONS:
        return False
    if job.cancellation_state:
        return False
    if job.person_held:
        job.hold_for_person(now)
        job.step_attempts = 0
        job.recheck_fitness = job.step is not Step.PRECHECKS
        return True
    job.run_again(now)
    return True


def needs_fitness(job: Job) -> bool:
    """Before the step in hand: a job resumed after a device hold asks CheckFitness first when
    the step works on the device."""
    return job.recheck_fitness and job.step in DEVICE_CALL_STEPS
