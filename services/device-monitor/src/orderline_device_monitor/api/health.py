# Texts for people carry zh-CN punctuation on purpose.
# ruff: noqa: RUF001
"""DeviceHealthService: health, fitness to be worked on, alarms."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from opentelemetry import trace

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.api.convert import (
    TICKET_STATES_FROM_PROTO,
    alarm_to_proto,
    anomaly_to_proto,
    fitness_to_proto,
    health_to_proto,
    ticket_to_proto,
)
from orderline_device_monitor.app.alarm_desk import AlarmDesk
from orderline_device_monitor.app.queries import DeviceHealthQueries
from orderline_device_monitor.app.records import (
    ALARM_CLEARED,
    ALARM_RAISED,
    AlarmFilter,
    AnomalyFilter,
    TicketFilter,
)
from orderline_device_monitor.app.tickets import TicketDesk
from orderline_device_monitor.domain import tickets
from orderline_device_monitor.domain.health import Category, Severity, device_id_problem
from orderline_runtime.errors import Violations
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.rpc.timestamps import optional_time
from orderline_runtime.telemetry import DEVICE_ID, order_scope

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

ORDER_ID_MAX = 64


def _check_device_id(violations: Violations, device_id: str) -> None:
    problem = device_id_problem(device_id)
    if problem:
        violations.add("device_id", problem)


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
ALARM_ID_MAX = 36
REASON_MAX = 500


def _check_alarm_id(violations: Violations, alarm_id: str) -> None:
    if not alarm_id:
        violations.add("alarm_id", "required | 必填")
    elif len(alarm_id) > ALARM_ID_MAX or not alarm_id.isprintable() or alarm_id != alarm_id.strip():
        violations.add(
            "alarm_id",
            f"at most {ALARM_ID_MAX} printable characters | 最多 {ALARM_ID_MAX} 个可打印字符",
        )


# Wire value → domain value; UNSPECIFIED and values this build does not know are absent.
_SEVERITIES: dict[int, Severity] = {
    device_pb2.PerceivedSeverity.Value("PERCEIVED_SEVERITY_" + s.name): s for s in Severity
}
_CATEGORIES: dict[int, Category] = {
    device_pb2.HealthCategory.Value("HEALTH_CATEGORY_" + c.name): c for c in Category
}
# RAISED and UPDATED are both open alarms (a row is RAISED until it is cleared).
_STATES = {
    device_pb2.ALARM_STATE_RAISED: ALARM_RAISED,
    device_pb2.ALARM_STATE_UPDATED: ALARM_RAISED,
    device_pb2.ALARM_STATE_CLEARED: ALARM_CLEARED,
}


TICKET_ID_MAX = 36


def _check_ticket_id(violations: Violations, ticket_id: str) -> None:
    if not ticket_id:
        violations.add("ticket_id", "required | 必填")
    elif (
        len(ticket_id) > TICKET_ID_MAX
        or not ticket_id.isprintable()
        or ticket_id != ticket_id.strip()
    ):
        violations.add(
            "ticket_id",
            f"at most {TICKET_ID_MAX} printable characters | 最多 {TICKET_ID_MAX} 个可打印字符",
        )


def _check_text(violations: Violations, name: str, text: str, limit: int, required: bool) -> str:
    problem = tickets.text_problem(text, limit, required=required)
    if problem:
        violations.add(name, problem)
    return text.strip()


def _check_page_size(violations: Violations, page_size: int) -> None:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        violations.add(
            "page_size",
            f"must be between 0 and {MAX_PAGE_SIZE} | 必须在 0 到 {MAX_PAGE_SIZE} 之间",
        )


def _decode_token(violations: Violations, token: str, filters: dict[str, object]) -> str | None:
    if not token:
        return None
    try:
        return decode_page_token(token, filters)
    except BadPageToken as exc:
        violations.add("page_token", f"{exc} | 分页令牌无效")
        return None


MODEL_MAX = 64


class DeviceHealthApi(device_pb2_grpc.DeviceHealthServiceServicer):
    def __init__(self, queries: DeviceHealthQueries, desk: AlarmDesk, tickets: TicketDesk) -> None:
        self.queries = queries
        self.desk = desk
        self.tickets = tickets

    async def GetDeviceHealth(
        self, request: device_pb2.GetDeviceHealthRequest, context: Context
    ) -> device_pb2.GetDeviceHealthResponse:
        violations = Violations()
        _check_device_id(violations, request.device_id)
        violations.raise_if_any()
        trace.get_current_span().set_attribute(DEVICE_ID, request.device_id)
        view = await self.queries.health(request.device_id)
        return device_pb2.GetDeviceHealthResponse(health=health_to_proto(view))

    async def CheckFitness(
        self, request: device_pb2.CheckFitnessRequest, context: Context
    ) -> device_pb2.CheckFitnessResponse:
        violations = Violations()
        _check_device_id(violations, request.device_id)
        if len(request.order_id) > ORDER_ID_MAX or not request.order_id.isprintable():
            violations.add("order_id", f"at most {ORDER_ID_MAX} printable characters")
        violations.raise_if_any()
        trace.get_current_span().set_attribute(DEVICE_ID, request.device_id)
        checked_by = current_principal().subject
        if not request.order_id:
            result = await self.queries.check_fitness(request.device_id, "", checked_by)
            return fitness_to_proto(result)
        # Called by provisioning inside the order's trace: everything below carries the order.
        with order_scope(request.order_id, request.device_id):
            result = await self.queries.check_fitness(
                request.device_id, request.order_id, checked_by
            )
            return fitness_to_proto(result)

    async def ListAlarms(
        self, request: device_pb2.ListAlarmsRequest, context: Context
    ) -> device_pb2.ListAlarmsResponse:
        violations = Violations()
        if request.device_id:
            _check_device_id(violations, request.device_id)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            violations.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        severities: set[Severity] = set()
        for i, sev_value in enumerate(request.severities):
            severity = _SEVERITIES.get(sev_value)
            if severity is None:
                violations.add(f"severities[{i}]", "unknown severity | 未知的严重级别")
            else:
                severities.add(severity)
        states: set[str] = set()
        for i, state_value in enumerate(request.states):
            if state_value not in _STATES:
                violations.add(f"states[{i}]", "unknown alarm state | 未知的告警状态")
            else:
                states.add(_STATES[state_value])
        categories: set[Category] = set()
        for i, cat_value in enumerate(request.categories):
            category = _CATEGORIES.get(cat_value)
            if category is None:
                violations.add(f"categories[{i}]", "unknown category | 未知的类别")
            else:
                categories.add(category)
        acknowledged = request.acknowledged if request.HasField("acknowledged") else None
        where = AlarmFilter(
            device_id=request.device_id or None,
            only_open=request.only_open,
            severities=frozenset(severities),
            states=frozenset(states),
            categories=frozenset(categories),
            acknowledged=acknowledged,
        )
        # The token is bound to every filter (in a stable order), so it cannot page another list.
        filters = {
            "device_id": request.device_id,
            "only_open": request.only_open,
            "severities": sorted(s.label for s in severities),
            "states": sorted(states),
            "categories": sorted(c.value for c in categories),
            "acknowledged": acknowledged,
        }
        before_id: str | None = None
        if request.page_token:
            try:
                before_id = decode_page_token(request.page_token, filters)
            except BadPageToken as exc:
                violations.add("page_token", str(exc))
        violations.raise_if_any()
        page = await self.queries.list_alarms(
            where=where, before_id=before_id, limit=request.page_size or DEFAULT_PAGE_SIZE
        )
        token = ""
        if page.next_before_id:
            token = encode_page_token(page.next_before_id, filters)
        return device_pb2.ListAlarmsResponse(
            alarms=[alarm_to_proto(a) for a in page.alarms], next_page_token=token
        )

    async def AcknowledgeAlarm(
        self, request: device_pb2.AcknowledgeAlarmRequest, context: Context
    ) -> device_pb2.AcknowledgeAlarmResponse:
        violations = Violations()
        _check_alarm_id(violations, request.alarm_id)
        violations.raise_if_any()
        record = await self.desk.acknowledge(request.alarm_id, current_principal().subject)
        trace.get_current_span().set_attribute(DEVICE_ID, record.device_id)
        return device_pb2.AcknowledgeAlarmResponse(alarm=alarm_to_proto(record))

    async def ClearAlarm(
        self, request: device_pb2.ClearAlarmRequest, context: Context
    ) -> device_pb2.ClearAlarmResponse:
        violations = Violations()
        _check_alarm_id(violations, request.alarm_id)
        reason = request.reason.strip()
        if not reason:
            violations.add(
                "reason",
                "required: say why a person clears the alarm | 必填：说明人工清除告警的原因",
            )
        elif len(reason) > REASON_MAX or not reason.isprintable():
            violations.add(
                "reason",
                f"at most {REASON_MAX} printable characters | 最多 {REASON_MAX} 个可打印字符",
            )
        violations.raise_if_any()
        record = await self.desk.clear(request.alarm_id, current_principal().subject, reason)
        trace.get_current_span().set_attribute(DEVICE_ID, record.device_id)
        return device_pb2.ClearAlarmResponse(alarm=alarm_to_proto(record))

    # --- tickets ---------------------------------------------------------------------------

    async def CreateTicket(
        self, request: device_pb2.CreateTicketRequest, context: Context
    ) -> device_pb2.CreateTicketResponse:
        violations = Violations()
        _check_device_id(violations, request.device_id)
        description = _check_text(
            violations, "description", request.description, tickets.DESCRIPTION_MAX, True
        )
        category: Category | None = None
        if request.category:
            category = _CATEGORIES.get(request.category)
            if category is None:
                violations.add("category", "unknown category | 未知的类别")
        if len(request.order_id) > ORDER_ID_MAX or not request.order_id.isprintable():
            violations.add(
                "order_id",
                f"at most {ORDER_ID_MAX} printable characters | 最多 {ORDER_ID_MAX} 个可打印字符",
            )
        violations.raise_if_any()
        trace.get_current_span().set_attribute(DEVICE_ID, request.device_id)
        ticket, created = await self.tickets.create(
            device_id=request.device_id,
            description=description,
            category=category,
            order_id=request.order_id or None,
            by=current_principal().subject,
        )
        return device_pb2.CreateTicketResponse(ticket=ticket_to_proto(ticket), created=created)

    async def GetTicket(
        self, request: device_pb2.GetTicketRequest, context: Context
    ) -> device_pb2.GetTicketResponse:
        violations = Violations()
        _check_ticket_id(violations, request.ticket_id)
        violations.raise_if_any()
        ticket = await self.tickets.get(request.ticket_id)
        return device_pb2.GetTicketResponse(ticket=ticket_to_proto(ticket))

    async def ListTickets(
        self, request: device_pb2.ListTicketsRequest, context: Context
    ) -> device_pb2.ListTicketsResponse:
        violations = Violations()
        if request.device_id:
            _check_device_id(violations, request.device_id)
        _check_page_size(violations, request.page_size)
        states: set[str] = set()
        for i, value in enumerate(request.states):
            state = TICKET_STATES_FROM_PROTO.get(value)
            if state is None:
                violations.add(f"states[{i}]", "unknown ticket state | 未知的工单状态")
            else:
                states.add(state.value)
        filters: dict[str, object] = {"device_id": request.device_id, "states": sorted(states)}
        before_id = _decode_token(violations, request.page_token, filters)
        violations.raise_if_any()
        page = await self.tickets.list(
            TicketFilter(device_id=request.device_id or None, states=frozenset(states)),
            before_id=before_id,
            limit=request.page_size or DEFAULT_PAGE_SIZE,
        )
        return device_pb2.ListTicketsResponse(
            tickets=[ticket_to_proto(t) for t in page.items],
            next_page_token=(
                encode_page_token(page.next_before_id, filters) if page.next_before_id else ""
            ),
        )

    async def ProgressTicket(
        self, request: device_pb2.ProgressTicketRequest, context: Context
    ) -> device_pb2.ProgressTicketResponse:
        violations = Violations()
        _check_ticket_id(violations, request.ticket_id)
        note = _check_text(violations, "note", request.note, tickets.NOTE_MAX, False)
        violations.raise_if_any()
        ticket = await self.tickets.progress(
            request.ticket_id, by=current_principal().subject, note=note
        )
        trace.get_current_span().set_attribute(DEVICE_ID, ticket.device_id)
        return device_pb2.ProgressTicketResponse(ticket=ticket_to_proto(ticket))

    async def ResolveTicket(
        self, request: device_pb2.ResolveTicketRequest, context: Context
    ) -> device_pb2.ResolveTicketResponse:
        violations = Violations()
        _check_ticket_id(violations, request.ticket_id)
        for name, problem in tickets.resolution_problems(
            request.root_cause_code, request.corrective_action_code
        ):
            violations.add(name, problem)
        note = _check_text(violations, "note", request.note, tickets.NOTE_MAX, False)
        violations.raise_if_any()
        ticket = await self.tickets.resolve(
            request.ticket_id,
            by=current_principal().subject,
            root_cause_code=request.root_cause_code,
            corrective_action_code=request.corrective_action_code,
            note=note,
        )
        trace.get_current_span().set_attribute(DEVICE_ID, ticket.device_id)
        return device_pb2.ResolveTicketResponse(ticket=ticket_to_proto(ticket))

    async def CloseTicket(
        self, request: device_pb2.CloseTicketRequest, context: Context
    ) -> device_pb2.CloseTicketResponse:
        violations = Violations()
        _check_ticket_id(violations, request.ticket_id)
        note = _check_text(violations, "note", request.note, tickets.NOTE_MAX, False)
        violations.raise_if_any()
        ticket = await self.tickets.close(
            request.ticket_id, by=current_principal().subject, note=note
        )
        trace.get_current_span().set_attribute(DEVICE_ID, ticket.device_id)
        return device_pb2.CloseTicketResponse(ticket=ticket_to_proto(ticket))

    # --- anomalies -------------------------------------------------------------------------

    async def ListAnomalies(
        self, request: device_pb2.ListAnomaliesRequest, context: Context
    ) -> device_pb2.ListAnomaliesResponse:
        violations = Violations()
        if request.device_id:
            _check_device_id(violations, request.device_id)
        model = request.device_model
        if len(model) > MODEL_MAX or not model.isprintable() or model != model.strip():
            violations.add(
                "device_model",
                f"at most {MODEL_MAX} printable characters | 最多 {MODEL_MAX} 个可打印字符",
            )
        _check_page_size(violations, request.page_size)
        categories: set[Category] = set()
        for i, value in enumerate(request.categories):
            category = _CATEGORIES.get(value)
            if category is None:
                violations.add(f"categories[{i}]", "unknown category | 未知的类别")
            else:
                categories.add(category)
        start = optional_time(request, "first_seen_from", violations)
        end = optional_time(request, "first_seen_before", violations)
        if start is not None and end is not None and end <= start:
            violations.add(
                "first_seen_before",
                "must be after first_seen_from | 必须晚于 first_seen_from",
            )
        filters: dict[str, object] = {
            "device_model": model,
            "device_id": request.device_id,
            "categories": sorted(c.value for c in categories),
            "from": start.isoformat() if start else "",
            "before": end.isoformat() if end else "",
        }
        before_id = _decode_token(violations, request.page_token, filters)
        violations.raise_if_any()
        page = await self.tickets.anomalies(
            AnomalyFilter(
                device_model=model or None,
                device_id=request.device_id or None,
                categories=frozenset(categories),
                first_seen_from=start,
                first_seen_before=end,
            ),
            before_id=before_id,
            limit=request.page_size or DEFAULT_PAGE_SIZE,
        )
        return device_pb2.ListAnomaliesResponse(
            anomalies=[anomaly_to_proto(a) for a in page.items],
            next_page_token=(
                encode_page_token(page.next_before_id, filters) if page.next_before_id else ""
            ),
        )
