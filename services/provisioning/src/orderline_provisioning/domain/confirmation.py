"""The customer's confirmation that the service works, and their feedback (步骤六 客户确认):
recorded by the clerk after the call, once per order, on a job that completed (activated and
the customer notified). Pure.

Idempotent: the same confirmation (channel) or the same feedback (score, comment, channel)
again returns the record kept, whoever sends it; a different one is refused as already
recorded (the API answers ALREADY_EXISTS), so a second clerk cannot overwrite the first's
record. A job that has not completed is refused naming its state (FAILED_PRECONDITION).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState
from orderline_runtime.pii import mask_phone

# How the clerk heard from the customer.
CHANNELS = ("call", "sms", "visit")
SCORE_MIN, SCORE_MAX = 1, 5
MAX_COMMENT = 500

JOB_NOT_COMPLETED = "JOB_NOT_COMPLETED"
ALREADY_CONFIRMED = "ALREADY_CONFIRMED"
FEEDBACK_ALREADY_RECORDED = "FEEDBACK_ALREADY_RECORDED"

# Runs of 7 or more digits (spaces, dashes and a leading + allowed): phone numbers a customer
# dictated into the comment; masked before the comment is kept or published.
_PHONE_LIKE = re.compile(r"\+?\d(?:[ -]?\d){6,}")


@dataclass(frozen=True)
class Confirmation:
    job_id: str
    order_id: str
    channel: str
    confirmed_by: str
    confirmed_at: datetime


@dataclass(frozen=True)
class Feedback:
    job_id: str
    order_id: str
    score: int
    comment: str
    channel: str
    recorded_by: str
    recorded_at: datetime


class NotCompleted(Exception):
    """The job has not completed: nothing to confirm yet."""

    def __init__(self, job: Job) -> None:
        reason = f" ({job.reason})" if job.reason else ""
        super().__init__(
            f"job {job.id} of order {job.order_id} has not completed: it is "
            f"{job.state.value} at {job.step.value}{reason}"
        )
        self.job = job


class AlreadyRecorded(Exception):
    """A different record exists already for the order."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def masked_comment(comment: str) -> str:
    return _PHONE_LIKE.sub(lambda m: mask_phone(re.sub(r"[ -]", "", m.group(0))), comment.strip())


def feedback_violations(score: int, comment: str) -> list[tuple[str, str]]:
    """(field, description) for each bad field of a feedback."""
    out: list[tuple[str, str]] = []
    if not SCORE_MIN <= score <= SCORE_MAX:
        out.append(("score", f"must be {SCORE_MIN}..{SCORE_MAX} (satisfaction)"))
    if len(comment) > MAX_COMMENT:
        out.append(("comment", f"at most {MAX_COMMENT} characters"))
    return out


def require_completed(job: Job) -> None:
    if job.state is not JobState.COMPLETED:
        raise NotCompleted(job)


def confirm(
    job: Job, existing: Confirmation | None, channel: str, by: str, now: datetime
) -> tuple[Confirmation, bool]:
    """The confirmation to keep and whether it is new (False: the one kept, returned again)."""
    require_completed(job)
    if existing is not None:
        if existing.channel == channel:
            return existing, False
        raise AlreadyRecorded(
            ALREADY_CONFIRMED,
            f"order {job.order_id} was confirmed already by {existing.confirmed_by} "
            f"({existing.channel}, {existing.confirmed_at.isoformat()})",
        )
    return Confirmation(job.id, job.order_id, channel, by, now), True


def record_feedback(
    job: Job,
    existing: Feedback | None,
    score: int,
    comment: str,
    channel: str,
    by: str,
    now: datetime,
) -> tuple[Feedback, bool]:
    """The feedback to keep and whether it is new. `score` and `comment` already checked
    (feedback_violations)."""
    require_completed(job)
    kept = masked_comment(comment)
    if existing is not None:
        if (existing.score, existing.comment, existing.channel) == (score, kept, channel):
            return existing, False
        raise AlreadyRecorded(
            FEEDBACK_ALREADY_RECORDED,
            f"the feedback of order {job.order_id} was recorded already by "
            f"{existing.recorded_by} (score {existing.score}, {existing.channel}, "
            f"{existing.recorded_at.isoformat()})",
        )
    return Feedback(job.id, job.order_id, score, kept, channel, by, now), True
