"""DeviceHealthService: health, fitness to be worked on, alarms."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from opentelemetry import trace

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.api.convert import alarm_to_proto, fitness_to_proto, health_to_proto
from orderline_device_monitor.app.queries import DeviceHealthQueries
from orderline_device_monitor.domain.health import device_id_problem
from orderline_runtime.errors import Violations
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.telemetry import DEVICE_ID, order_scope

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

ORDER_ID_MAX = 64


def _check_device_id(violations: Violations, device_id: str) -> None:
    problem = device_id_problem(device_id)
    if problem:
        violations.add("device_id", problem)


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class DeviceHealthApi(device_pb2_grpc.DeviceHealthServiceServicer):
    def __init__(self, queries: DeviceHealthQueries) -> None:
        self.queries = queries

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
        filters = {"device_id": request.device_id, "only_open": request.only_open}
        before_id: str | None = None
        if request.page_token:
            try:
                before_id = decode_page_token(request.page_token, filters)
            except BadPageToken as exc:
                violations.add("page_token", str(exc))
        violations.raise_if_any()
        page = await self.queries.list_alarms(
            device_id=request.device_id or None,
            only_open=request.only_open,
            before_id=before_id,
            limit=request.page_size or DEFAULT_PAGE_SIZE,
        )
        token = ""
        if page.next_before_id:
            token = encode_page_token(page.next_before_id, filters)
        return device_pb2.ListAlarmsResponse(
            alarms=[alarm_to_proto(a) for a in page.alarms], next_page_token=token
        )
