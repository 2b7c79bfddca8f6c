"""Follow-up after completion: visits at the business type's follow-up days, each recorded
once with its outcome; a reported problem opens a trouble case on the order.

Pure: the schedule and overdue are computed from times given, never from a clock read here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from orderline_intake.domain.text import says
from orderline_runtime.errors import FailedPrecondition, PreconditionViolation


class Outcome(enum.StrEnum):
    SATISFIED = "satisfied"
    PROBLEM_REPORTED = "problem_reported"
    NOT_REACHED = "not_reached"


class CaseState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class FollowUp:
    id: str
    order_id: str
    business_type: str
    day: int
    due_at: datetime
    outcome: Outcome | None = None
    note: str = ""
    recorded_by: str = ""
    recorded_at: datetime | None = None
    case_id: str = ""

    @property
    def recorded(self) -> bool:
        return self.outcome is not None

    def overdue(self, now: datetime) -> bool:
        """Due before now and not recorded."""
        return not self.recorded and self.due_at < now

    def record(
        self, outcome: Outcome, note: str, actor: str, now: datetime, case_id: str = ""
    ) -> FollowUp:
        if self.recorded:
            raise FailedPrecondition(
                f"follow-up {self.id} was recorded already ({self.outcome}, by "
                f"{self.recorded_by}): a visit's outcome is recorded once",
                reason="FOLLOW_UP_RECORDED",
                violations=[
                    PreconditionViolation(
                        "FOLLOW_UP_RECORDED",
                        self.id,
                        str(says("already recorded", "该回访已登记结果")),
                    )
                ],
            )
        return replace(
            self,
            outcome=outcome,
            note=note,
            recorded_by=actor,
            recorded_at=now,
            case_id=case_id,
        )


def schedule(
    order_id: str,
    business_type: str,
    days: Sequence[int],
    completed_at: datetime,
    ids: Sequence[str],
) -> list[FollowUp]:
    """One visit per follow-up day, due that many days after completion."""
    return [
        FollowUp(id_, order_id, business_type, day, completed_at + timedelta(days=day))
        for id_, day in zip(ids, days, strict=True)
    ]


@dataclass(frozen=True)
class TroubleCase:
    id: str
    order_id: str
    follow_up_id: str
    description: str
    device_problem: bool
    opened_by: str
    opened_at: datetime
    state: CaseState = CaseState.OPEN
    closed_by: str = ""
    closed_at: datetime | None = None
    resolution: str = ""

    def close(self, resolution: str, actor: str, now: datetime) -> TroubleCase:
        if self.state is CaseState.CLOSED:
            raise FailedPrecondition(
                f"case {self.id} was closed already by {self.closed_by}",
                reason="CASE_CLOSED",
                violations=[
                    PreconditionViolation(
                        "CASE_CLOSED", self.id, str(says("already closed", "该工单已关闭"))
                    )
                ],
            )
        return replace(
            self, state=CaseState.CLOSED, closed_by=actor, closed_at=now, resolution=resolution
        )
