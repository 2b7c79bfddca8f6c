"""Cancellation of a job (the order's cancellation request, from intake): how far the job
got decides what it means, and the compensation it records.

- past the point of no return (the service was activated): declined, the job goes on;
- never past its checklist: cancelled at once, nothing to undo (the device was not touched);
- failed: its failure already rolled the device back (the test step does): answered cancelled;
- otherwise: the job takes the `cancel` step, which rolls the device back to the version it
  had before the job (idempotent on the job's rollback key), then ends `cancelled`.

A job with a step in flight lets the step finish first: the worker's save lands only while the
cancellation id is the one it loaded, so it learns of the request then (app/worker.py).
"""

from __future__ import annotations

import enum
from datetime import datetime

from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState, Step

# Why a cancellation is declined.
SERVICE_ALREADY_ACTIVATED = "SERVICE_ALREADY_ACTIVATED"
# The job's reason while it compensates, and once cancelled.
CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
CANCELLED = "CANCELLED"

# The compensation recorded (provisioning.cancellation_completed's `compensation`).
NOTHING_TO_UNDO = "NOTHING_TO_UNDO"
ROLLED_BACK = "ROLLED_BACK"
ROLLED_BACK_AT_FAILURE = "ROLLED_BACK_AT_FAILURE"


class CancellationState(enum.StrEnum):
    """What became of the cancellation on the job."""

    NONE = ""
    # Recorded while a step was in flight: the worker decides once the step is saved.
    REQUESTED = "requested"
    COMPENSATING = "compensating"
    CANCELLED = "cancelled"
    DECLINED = "declined"


class Decision(enum.Enum):
    DECLINE = "decline"
    ALREADY_FAILED = "already_failed"
    ALREADY_DECIDED = "already_decided"
    CANCEL_NOW = "cancel_now"
    COMPENSATE = "compensate"


def past_point_of_no_return(job: Job) -> bool:
    """The service was activated (or the job got past activation some other way)."""
    return (
        job.activated_at is not None
        or job.state is JobState.COMPLETED
        or job.step in (Step.NOTIFY, Step.DONE)
    )


def decide(job: Job) -> Decision:
    if job.cancellation_state in (CancellationState.CANCELLED, CancellationState.DECLINED):
        return Decision.ALREADY_DECIDED
    if job.state is JobState.CANCELLED:
        return Decision.ALREADY_DECIDED
    if past_point_of_no_return(job):
        return Decision.DECLINE
    if job.state is JobState.FAILED:
        return Decision.ALREADY_FAILED
    if not job.touched_device:
        return Decision.CANCEL_NOW
    return Decision.COMPENSATE


def take_request(job: Job, cancellation_id: str, reason: str, requested_at: datetime) -> None:
    job.cancellation_id = cancellation_id
    job.cancel_reason = reason
    job.cancel_requested_at = requested_at
    if not job.cancellation_state:
        job.cancellation_state = CancellationState.REQUESTED


def cancel_now(job: Job, now: datetime) -> None:
    """The device was never touched: the job ends at once (its reservation is released with
    the save)."""
    job.state = JobState.CANCELLED
    job.reason = CANCELLED
    job.detail = "cancelled before the device was touched: nothing to undo"
    job.cancellation_state = CancellationState.CANCELLED
    job.cancel_decided_at = now
    job.compensation = NOTHING_TO_UNDO
    job.updated_at = now


def begin_compensation(job: Job, now: datetime) -> None:
    """The job stops where it is and takes the cancel step next, at once."""
    job.state = JobState.RUNNING
    job.step = Step.CANCEL
    job.step_attempts = 0
    job.reason = CANCELLATION_REQUESTED
    job.detail = ""
    job.step_started_at = now
    job.next_attempt_at = now
    job.updated_at = now
    job.cancellation_state = CancellationState.COMPENSATING


def finish_compensation(job: Job, rolled_back_to: int | None, now: datetime) -> None:
    job.state = JobState.CANCELLED
    job.reason = CANCELLED
    job.rolled_back_to = rolled_back_to
    job.compensation = ROLLED_BACK if rolled_back_to is not None else NOTHING_TO_UNDO
    job.detail = (
        f"cancelled; device configuration rolled back to version {rolled_back_to}"
        if rolled_back_to is not None
        else "cancelled; the job had not changed the device's configuration"
    )
    job.cancellation_state = CancellationState.CANCELLED
    job.cancel_decided_at = now
    job.updated_at = now


def answered_after_failure(job: Job, now: datetime) -> None:
    """A failed job's failure already rolled its device back: the cancellation is answered
    as done, the job stays failed."""
    job.cancellation_state = CancellationState.CANCELLED
    job.cancel_decided_at = now
    job.compensation = ROLLED_BACK_AT_FAILURE
    job.rolled_back_to = job.config_version if job.base_config_version is not None else None


def decline(job: Job, now: datetime) -> None:
    job.cancellation_state = CancellationState.DECLINED
    job.cancel_decided_at = now
