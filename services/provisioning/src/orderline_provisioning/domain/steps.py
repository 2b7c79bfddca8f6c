"""The step machine of a provisioning job (开通作业): which step follows which, and job states."""

from __future__ import annotations

import enum


class Step(enum.StrEnum):
    """The next step a job runs; `done` when nothing is left."""

    PRECHECKS = "prechecks"
    CONFIGURE = "configure"
    TEST = "test"
    ACTIVATE = "activate"
    NOTIFY = "notify"
    DONE = "done"
    # Not in the normal order: the order was cancelled and the job undoes its device work
    # (domain/cancellation.py).
    CANCEL = "cancel"


class JobState(enum.StrEnum):
    RUNNING = "running"
    # Work stopped: the device is abnormal or a person must act.
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    # The order was cancelled; what the job did to the device was undone.
    CANCELLED = "cancelled"


STEP_ORDER: tuple[Step, ...] = (
    Step.PRECHECKS,
    Step.CONFIGURE,
    Step.TEST,
    Step.ACTIVATE,
    Step.NOTIFY,
    Step.DONE,
)
FIRST_STEP = STEP_ORDER[0]


def next_step(step: Step) -> Step:
    """prechecks → configure → test → activate → notify → done; done has no successor."""
    if step is Step.DONE:
        raise ValueError("a finished job has no next step")
    if step is Step.CANCEL:
        raise ValueError("a cancelled job has no next step")
    return STEP_ORDER[STEP_ORDER.index(step) + 1]


def parse_step(text: str) -> Step:
    try:
        return Step(text)
    except ValueError:
        raise ValueError(f"unknown step {text!r}") from None


class TestKind(enum.StrEnum):
    """The tests before activation, run in this order."""

    __test__ = False  # not a pytest test class

    FUNCTIONAL = "functional"
    PERFORMANCE = "performance"
    SECURITY = "security"
    ENVIRONMENTAL = "environmental"
    USER_INTERFACE = "user_interface"


TEST_KINDS: tuple[TestKind, ...] = tuple(TestKind)


def idempotency_key(job_id: str, operation: str, kind: str = "") -> str:
    """`<job_id>:configure`, `<job_id>:test:functional`, `<job_id>:rollback`, `<job_id>:notify`."""
    return f"{job_id}:{operation}:{kind}" if kind else f"{job_id}:{operation}"
