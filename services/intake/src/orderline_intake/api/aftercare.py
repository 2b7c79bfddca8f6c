"""The communication log, follow-ups and trouble cases over gRPC: messages in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderline.order.v1 import order_pb2
from orderline_intake.app.aftercare import FOLLOW_UP_OUTCOME_PROTO, AftercareApp
from orderline_intake.domain.communication import Channel, Communication, Direction
from orderline_intake.domain.followup import CaseState, FollowUp, TroubleCase
from orderline_intake.domain.text import says
from orderline_runtime.errors import Violations
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.rpc.timestamps import optional_time
from orderline_runtime.telemetry import order_scope
from orderline_runtime.timestamps import set_timestamp

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_ID = 36

CHANNEL_TO_PROTO: dict[Channel, order_pb2.CommunicationChannel.ValueType] = {
    Channel.CALL: order_pb2.COMMUNICATION_CHANNEL_CALL,
    Channel.SMS: order_pb2.COMMUNICATION_CHANNEL_SMS,
    Channel.NOTE: order_pb2.COMMUNICATION_CHANNEL_NOTE,
}
PROTO_TO_CHANNEL = {v: k for k, v in CHANNEL_TO_PROTO.items()}
DIRECTION_TO_PROTO: dict[Direction, order_pb2.CommunicationDirection.ValueType] = {
    Direction.INBOUND: order_pb2.COMMUNICATION_DIRECTION_INBOUND,
    Direction.OUTBOUND: order_pb2.COMMUNICATION_DIRECTION_OUTBOUND,
}
PROTO_TO_DIRECTION = {v: k for k, v in DIRECTION_TO_PROTO.items()}
PROTO_TO_OUTCOME = {v: k for k, v in FOLLOW_UP_OUTCOME_PROTO.items()}
CASE_STATE_TO_PROTO: dict[CaseState, order_pb2.CaseState.ValueType] = {
    CaseState.OPEN: order_pb2.CASE_STATE_OPEN,
    CaseState.CLOSED: order_pb2.CASE_STATE_CLOSED,
}
PROTO_TO_CASE_STATE = {v: k for k, v in CASE_STATE_TO_PROTO.items()}


def communication_message(c: Communication) -> order_pb2.Communication:
    msg = order_pb2.Communication(
        id=c.id,
        order_id=c.order_id,
        channel=CHANNEL_TO_PROTO[c.channel],
        direction=DIRECTION_TO_PROTO[c.direction],
        actor=c.actor,
        text=c.text,
        delivery_id=c.delivery_id,
    )
    set_timestamp(msg.at, c.at)
    return msg


def follow_up_message(f: FollowUp, now: datetime) -> order_pb2.FollowUp:
    msg = order_pb2.FollowUp(
        id=f.id,
        order_id=f.order_id,
        business_type=f.business_type,
        day=f.day,
        outcome=(
            FOLLOW_UP_OUTCOME_PROTO[f.outcome]
            if f.outcome
            else order_pb2.FOLLOW_UP_OUTCOME_UNSPECIFIED
        ),
        note=f.note,
        recorded_by=f.recorded_by,
        overdue=f.overdue(now),
        case_id=f.case_id,
    )
    set_timestamp(msg.due_at, f.due_at)
    if f.recorded_at:
        set_timestamp(msg.recorded_at, f.recorded_at)
    return msg


def case_message(c: TroubleCase) -> order_pb2.TroubleCase:
    msg = order_pb2.TroubleCase(
        id=c.id,
        order_id=c.order_id,
        follow_up_id=c.follow_up_id,
        state=CASE_STATE_TO_PROTO[c.state],
        description=c.description,
        device_problem=c.device_problem,
        opened_by=c.opened_by,
        closed_by=c.closed_by,
        resolution=c.resolution,
    )
    set_timestamp(msg.opened_at, c.opened_at)
    if c.closed_at:
        set_timestamp(msg.closed_at, c.closed_at)
    return msg


def _id(v: Violations, value: str, field: str, *, required: bool = True) -> str:
    value = value.strip()
    if not value:
        if required:
            v.add(field, str(says("required", "必填")))
    elif len(value) > MAX_ID:
        v.add(field, str(says(f"an id of at most {MAX_ID} characters", f"编号最多{MAX_ID}位")))
    return value


def _page(
    v: Violations, size: int, token: str, filters: dict[str, object]
) -> tuple[int, tuple[datetime, str] | None]:
    """The page size and the (time, id) position the token points after."""
    if size < 0 or size > MAX_PAGE:
        v.add("page_size", str(says(f"between 0 and {MAX_PAGE}", f"应在0至{MAX_PAGE}之间")))
    after: tuple[datetime, str] | None = None
    if token:
        try:
            at, _, last_id = decode_page_token(token, filters).partition("|")
            after = (datetime.fromisoformat(at), last_id)
        except (BadPageToken, ValueError):
            v.add("page_token", str(says("not a page token of this list", "无效的分页标记")))
    return size or DEFAULT_PAGE, after


def _next(count: int, limit: int, at: datetime, last_id: str, filters: dict[str, object]) -> str:
    return encode_page_token(f"{at.isoformat()}|{last_id}", filters) if count == limit else ""


class AftercareRpcs:
    """The RPCs of the communication log, follow-ups and cases (mixed into OrderServiceApi)."""

    aftercare: AftercareApp

    async def AddCommunication(
        self, request: order_pb2.AddCommunicationRequest, context: Any
    ) -> order_pb2.AddCommunicationResponse:
        principal = current_principal()
        v = Violations()  # the request's own problems, reported with the app's at once
        order_id = _id(v, request.order_id, "order_id")
        at = optional_time(request, "at", v)
        with order_scope(order_id):
            entry = await self.aftercare.add_communication(
                order_id,
                PROTO_TO_CHANNEL.get(request.channel),
                PROTO_TO_DIRECTION.get(request.direction),
                request.text,
                principal.subject,
                at,
                found=v,
            )
        return order_pb2.AddCommunicationResponse(communication=communication_message(entry))

    async def ListCommunications(
        self, request: order_pb2.ListCommunicationsRequest, context: Any
    ) -> order_pb2.ListCommunicationsResponse:
        v = Violations()
        order_id = _id(v, request.order_id, "order_id")
        filters: dict[str, object] = {"list": "communications", "order_id": order_id}
        limit, after = _page(v, request.page_size, request.page_token, filters)
        v.raise_if_any()
        with order_scope(order_id):
            found = await self.aftercare.communications(order_id, limit=limit, after=after)
        token = _next(len(found), limit, found[-1].at, found[-1].id, filters) if found else ""
        return order_pb2.ListCommunicationsResponse(
            communications=[communication_message(c) for c in found], next_page_token=token
        )

    async def ListFollowUps(
        self, request: order_pb2.ListFollowUpsRequest, context: Any
    ) -> order_pb2.ListFollowUpsResponse:
        v = Violations()
        order_id = _id(v, request.order_id, "order_id", required=False)
        filters: dict[str, object] = {
            "list": "follow_ups",
            "order_id": order_id,
            "overdue": request.overdue,
        }
        limit, after = _page(v, request.page_size, request.page_token, filters)
        v.raise_if_any()
        found, now = await self.aftercare.follow_ups(
            order_id=order_id or None, overdue=request.overdue, limit=limit, after=after
        )
        token = _next(len(found), limit, found[-1].due_at, found[-1].id, filters) if found else ""
        return order_pb2.ListFollowUpsResponse(
            follow_ups=[follow_up_message(f, now) for f in found], next_page_token=token
        )

    async def RecordFollowUp(
        self, request: order_pb2.RecordFollowUpRequest, context: Any
    ) -> order_pb2.RecordFollowUpResponse:
        principal = current_principal()
        v = Violations()
        follow_up_id = _id(v, request.follow_up_id, "follow_up_id")
        recorded, case = await self.aftercare.record_follow_up(
            follow_up_id,
            PROTO_TO_OUTCOME.get(request.outcome),
            request.note,
            principal.subject,
            device_problem=request.device_problem,
            found=v,
        )
        reply = order_pb2.RecordFollowUpResponse(
            follow_up=follow_up_message(recorded, self.aftercare.clock())
        )
        if case is not None:
            reply.trouble_case.CopyFrom(case_message(case))
        return reply

    async def ListCases(
        self, request: order_pb2.ListCasesRequest, context: Any
    ) -> order_pb2.ListCasesResponse:
        v = Violations()
        order_id = _id(v, request.order_id, "order_id", required=False)
        state: CaseState | None = None
        if request.state != order_pb2.CASE_STATE_UNSPECIFIED:
            state = PROTO_TO_CASE_STATE.get(request.state)
            if state is None:
                v.add("state", str(says("one of open, closed", "状态应为处理中或已关闭")))
        filters: dict[str, object] = {
            "list": "cases",
            "order_id": order_id,
            "state": int(request.state),
        }
        limit, after = _page(v, request.page_size, request.page_token, filters)
        v.raise_if_any()
        found = await self.aftercare.cases(
            order_id=order_id or None, state=state, limit=limit, after=after
        )
        token = (
            _next(len(found), limit, found[-1].opened_at, found[-1].id, filters) if found else ""
        )
        return order_pb2.ListCasesResponse(
            cases=[case_message(c) for c in found], next_page_token=token
        )

    async def CloseCase(
        self, request: order_pb2.CloseCaseRequest, context: Any
    ) -> order_pb2.CloseCaseResponse:
        principal = current_principal()
        v = Violations()
        case_id = _id(v, request.case_id, "case_id")
        closed = await self.aftercare.close_case(
            case_id, request.resolution, principal.subject, found=v
        )
        return order_pb2.CloseCaseResponse(trouble_case=case_message(closed))
