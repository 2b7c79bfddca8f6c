"""A person's hold of the order (order.hold_requested / order.resume_requested, from intake) and
what it means for the order's job.

A clerk, engineer or maintenance person who holds an order expects the work on it to pause:

- **Hold**: the person's hold is recorded on the job (who, why, when) and stops it at its next
  step boundary, never in the middle of a device call. A job no worker holds is held at once
  at its step (`hold_now`): one that has not started yet is held before it touches the device
  (its device reservation is released, as for any hold before the checklist passed). A job
  whose step is in flight finishes that step (its effects are kept: a configuration applied is
  recorded, its milestone published) and is held when the step is committed
  (`stop_at_boundary`). The hold is `PERSON_HOLD` and is not in the fallout queue: the person
  who held the order resumes it.
- **Past the point of no return** (activated: the job is at notify): the service stays active,
  nothing can undo that; the job is held before the customer's notice, which waits for the
  resume. An order completes only once notified, so it completes after the resume. A job that
  is over (completed, failed, cancelled) or being cancelled is left alone: the cancellation
  decides it.
- **Held for something else already** (an abnormal device, a hold in the fallout queue): the
  person's hold is recorded too; the job keeps its reason. When the device recovers, a job
  with a person's hold still in force waits for the person instead of running
  (`Job.hold_for_person`).
- **Resume** (`release`): the person's hold is lifted. A job held for it runs again from the
  step it was held at (its completed steps are not repeated: no second configuration), and
  asks CheckFitness before its next device step, as after a device hold; a device that is
  abnormal now holds it for the device instead. A job held for something else stays held, and
  says so again (`provisioning.job_held`), so that intake holds the order the person just
  resumed: it was held by the person when that hold arrived and is not held at all now.
- Hold and resume apply in the order of the order's versions they carry: an older one
  delivered late changes nothing (`newer`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from orderline_provisioning.domain import device_health
from orderline_provisioning.domain.cancellation import CancellationState
from orderline_provisioning.domain.device_health import DeviceWord
from orderline_provisioning.domain.job import PERSON_HOLD, Job
from orderline_provisioning.domain.steps import JobState, Step


@dataclass(frozen=True)
class PersonWord:
    """A person's hold (`hold` true) or resume of the order, as one event told it."""

    order_version: int
    hold: bool
    reason_code: str
    actor: str
    at: datetime


def newer(job: Job, word: PersonWord) -> bool:
    """The word is newer than the last one the job took (by the order's version)."""
    return word.order_version > job.person_hold_version


def _cancelling(job: Job) -> bool:
    """The order's cancellation reached the job and was not declined: it decides the job."""
    return job.cancellation_state not in (CancellationState.NONE, CancellationState.DECLINED)


def _work_left(job: Job) -> bool:
    """The job has a step of the order's work ahead (not over, not undoing it)."""
    return job.state in (JobState.RUNNING, JobState.HELD) and job.step not in (
        Step.DONE,
        Step.CANCEL,
    )


def take(job: Job, word: PersonWord) -> bool:
    """Records the person's hold or resume on the job (only its version, for a job that is
    over or being cancelled: the hold has nothing left to pause, the cancellation decides).
    False when older than one taken (a late redelivery): nothing changes."""
    if not newer(job, word):
        return False
    job.person_hold_version = word.order_version
    if word.hold and (not _work_left(job) or _cancelling(job)):
        return True
    if word.hold:
        job.person_hold_reason = word.reason_code
        job.person_hold_by = word.actor
        job.person_held_at = word.at
    else:
        job.person_hold_reason = ""
        job.person_hold_by = ""
        job.person_held_at = None
    return True


def hold_now(job: Job, now: datetime) -> bool:
    """A person's hold is in force on a running job no worker holds (or one just taken up,
    before its step): held at its step. False: nothing to stop (held already, over, being
    cancelled, no person's hold)."""
    if not job.person_held or job.state is not JobState.RUNNING or not _work_left(job):
        return False
    if _cancelling(job):
        return False
    job.hold_for_person(now)
    return True


def stop_at_boundary(job: Job, now: datetime) -> bool:
    """The worker commits a step of `job` (already changed by the step) and learns that a
    person's hold arrived while the step ran: the step's result is kept, and a job that would
    go on (the step completed, or is to be tried again) is held at its next step instead. A
    job the step held or failed, completed, or that is being cancelled stays as the step left
    it (the person's hold stays recorded)."""
    return hold_now(job, now)


class Release(enum.Enum):
    # The job runs again from the step it was held at.
    RESUMED = "resumed"
    # The device is abnormal now: held for it instead (provisioning.job_held tells intake).
    HELD_FOR_DEVICE = "held_for_device"
    # Held for another reason (a device, the fallout queue) that the resume does not lift;
    # provisioning.job_held tells intake again.
    STILL_HELD = "still_held"
    # Nothing was stopped by the person's hold (running, over, being cancelled).
    NOTHING = "nothing"


def release(job: Job, word: DeviceWord | None, now: datetime) -> Release:
    """After `take` recorded a resume: what becomes of the job. `word`: device-monitor's last
    word on the job's device, as provisioning keeps it."""
    if job.state is not JobState.HELD or _cancelling(job):
        return Release.NOTHING
    if job.reason != PERSON_HOLD:
        return Release.STILL_HELD
    job.run_again(now)
    if word is not None and device_health.hold_now(job, word, now):
        return Release.HELD_FOR_DEVICE
    return Release.RESUMED


def shown_detail(job: Job) -> str:
    """The job's detail as GetJob shows it: a job held for something else (its device, the
    fallout queue) while a person's hold is in force says so too."""
    if not job.person_held or job.reason == PERSON_HOLD or job.state is not JobState.HELD:
        return job.detail
    who = job.person_hold_by or "a person"
    also = f"the order is also held by {who} ({job.person_hold_reason})"
    return f"{job.detail}; {also}" if job.detail else also
