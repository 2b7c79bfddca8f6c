"""Use cases after the counter: the order's communication log, follow-up visits and the
trouble cases a reported problem opens.

The log's notification entries and the follow-up schedule are written by OrderApp, inside the
unit of work of the milestone or the completion (app/orders.py); what is here is a person's
request, each in a unit of work of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orderline.events.v1 import order_events_pb2 as OE
from orderline.order.v1 import order_pb2
from orderline_intake.app.ports import IntakeUnitOfWork, OrderRepository
from orderline_intake.domain.communication import (
    MAX_BACKDATE_DAYS,
    Channel,
    Communication,
    Direction,
    checked_text,
)
from orderline_intake.domain.followup import (
    CaseState,
    FollowUp,
    Outcome,
    TroubleCase,
)
from orderline_intake.domain.text import says
from orderline_runtime.clock import Clock
from orderline_runtime.errors import NotFound, Violations
from orderline_runtime.ids import new_id
from orderline_runtime.telemetry import order_scope
from orderline_runtime.unit_of_work import UnitOfWork

Uow = UnitOfWork[OrderRepository]
FOLLOW_UP_OUTCOME_PROTO: dict[Outcome, order_pb2.FollowUpOutcome.ValueType] = {
    Outcome.SATISFIED: order_pb2.FOLLOW_UP_OUTCOME_SATISFIED,
    Outcome.PROBLEM_REPORTED: order_pb2.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED,
    Outcome.NOT_REACHED: order_pb2.FOLLOW_UP_OUTCOME_NOT_REACHED,
}


class AftercareApp:
    def __init__(self, uow: IntakeUnitOfWork, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    # --- communication log -----------------------------------------------------------------

    async def add_communication(
        self,
        order_id: str,
        channel: Channel | None,
        direction: Direction | None,
        text: str,
        actor: str,
        at: datetime | None = None,
        *,
        found: Violations | None = None,
    ) -> Communication:
        """Records a call, an SMS or a note; every bad field is named at once (with those the
        caller `found` already)."""
        now = self.clock()
        v = found or Violations()
        if channel is None:
            v.add("channel", str(says("one of call, sms, note", "渠道应为电话、短信或备注")))
        if direction is None:
            v.add("direction", str(says("one of inbound, outbound", "方向应为呼入或呼出")))
        kept = checked_text(text, v)
        if at is not None and at > now:
            v.add("at", str(says("not in the future", "不能晚于当前时间")))
        elif at is not None and at < now - timedelta(days=MAX_BACKDATE_DAYS):
            v.add(
                "at",
                str(says(f"at most {MAX_BACKDATE_DAYS} days ago", f"最多{MAX_BACKDATE_DAYS}天前")),
            )
        v.raise_if_any()
        assert channel is not None and direction is not None  # refused above otherwise
        entry = Communication(new_id(), order_id, channel, direction, actor, at or now, kept)
        with order_scope(order_id):
            async with self.uow() as uow:
                if await uow.repos.business_type_of(order_id) is None:
                    raise NotFound("order", order_id)
                await uow.repos.add_communication(entry)
        return entry

    async def communications(
        self, order_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Communication]:
        async with self.uow(read_only=True) as uow:
            if await uow.repos.business_type_of(order_id) is None:
                raise NotFound("order", order_id)
            return await uow.repos.communications(order_id, limit=limit, after=after)

    # --- follow-ups ------------------------------------------------------------------------

    async def follow_ups(
        self,
        *,
        order_id: str | None,
        overdue: bool,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> tuple[list[FollowUp], datetime]:
        """The follow-ups, earliest due first, and the time overdue was judged at."""
        now = self.clock()
        async with self.uow(read_only=True) as uow:
            if order_id and await uow.repos.business_type_of(order_id) is None:
                raise NotFound("order", order_id)
            found = await uow.repos.follow_ups(
                order_id=order_id, overdue_at=now if overdue else None, limit=limit, after=after
            )
        return found, now

    async def record_follow_up(
        self,
        follow_up_id: str,
        outcome: Outcome | None,
        note: str,
        actor: str,
        *,
        device_problem: bool = False,
        found: Violations | None = None,
    ) -> tuple[FollowUp, TroubleCase | None]:
        """Records the visit's outcome, once (a second time is FAILED_PRECONDITION); a
        reported problem opens a trouble case linked to the order, in the same transaction.

        A problem with the device (`device_problem`) also opens a maintenance ticket:
        device-monitor does it on `order.case_opened`, which names the order's device
        (docs/order-lifecycle.md#follow-up)."""
        v = found or Violations()
        if outcome is None:
            v.add(
                "outcome",
                str(
                    says(
                        "one of satisfied, problem_reported, not_reached",
                        "结果应为满意、反映问题或未联系上",
                    )
                ),
            )
        kept = checked_text(note, v, "note") if note.strip() else ""
        if outcome is Outcome.PROBLEM_REPORTED and not note.strip():
            v.add("note", str(says("required: what the problem is", "必填: 问题描述")))
        if device_problem and outcome is not Outcome.PROBLEM_REPORTED:
            v.add(
                "device_problem",
                str(says("only with a reported problem", "仅在反映问题时填写")),
            )
        v.raise_if_any()
        assert outcome is not None
        now = self.clock()
        async with self.uow() as uow:
            visit = await uow.repos.follow_up(follow_up_id, for_update=True)
            if visit is None:
                raise NotFound("follow-up", follow_up_id)
            with order_scope(visit.order_id):
                case: TroubleCase | None = None
                if outcome is Outcome.PROBLEM_REPORTED:
                    case = TroubleCase(
                        new_id(), visit.order_id, visit.id, kept, device_problem, actor, now
                    )
                recorded = visit.record(outcome, kept, actor, now, case.id if case else "")
                await uow.repos.save_follow_up(recorded)
                uow.emit(
                    OE.FollowUpRecorded(
                        order_id=recorded.order_id,
                        business_type=recorded.business_type,
                        follow_up_id=recorded.id,
                        day=recorded.day,
                        outcome=FOLLOW_UP_OUTCOME_PROTO[outcome],
                        recorded_by=actor,
                        case_id=recorded.case_id,
                    )
                )
                if case is not None:
                    await uow.repos.add_case(case)
                    # A device problem goes to device-monitor as a maintenance ticket.
                    device = await uow.repos.device_of(case.order_id) if device_problem else None
                    uow.emit(
                        OE.CaseOpened(
                            order_id=case.order_id,
                            business_type=recorded.business_type,
                            case_id=case.id,
                            follow_up_id=case.follow_up_id,
                            device_problem=case.device_problem,
                            opened_by=actor,
                            device_id=device or "",
                        )
                    )
        return recorded, case

    # --- trouble cases ---------------------------------------------------------------------

    async def cases(
        self,
        *,
        order_id: str | None,
        state: CaseState | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[TroubleCase]:
        async with self.uow(read_only=True) as uow:
            if order_id and await uow.repos.business_type_of(order_id) is None:
                raise NotFound("order", order_id)
            return await uow.repos.cases(order_id=order_id, state=state, limit=limit, after=after)

    async def close_case(
        self, case_id: str, resolution: str, actor: str, *, found: Violations | None = None
    ) -> TroubleCase:
        v = found or Violations()
        kept = checked_text(resolution, v, "resolution")
        v.raise_if_any()
        async with self.uow() as uow:
            case = await uow.repos.case(case_id, for_update=True)
            if case is None:
                raise NotFound("case", case_id)
            with order_scope(case.order_id):
                closed = case.close(kept, actor, self.clock())
                await uow.repos.save_case(closed)
                uow.emit(
                    OE.CaseClosed(
                        order_id=closed.order_id,
                        business_type=await uow.repos.business_type_of(closed.order_id) or "",
                        case_id=closed.id,
                        closed_by=actor,
                    )
                )
        return closed
