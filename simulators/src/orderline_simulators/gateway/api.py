"""NotificationGatewayService: the gRPC face of the gateway."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import grpc

from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline_runtime.rpc.auth import Principal
from orderline_simulators.common.auth import caller
from orderline_simulators.common.errors import DomainError, InvalidArgument, NotFound, Unavailable
from orderline_simulators.common.logs import get_logger
from orderline_simulators.common.status import abort_with
from orderline_simulators.gateway.domain import (
    Channel,
    Delivery,
    DeliveryStatus,
    Gateway,
    mask_phone,
    mask_text,
    validate,
)

log = get_logger("notification-gateway")

# The longest a GetDelivery call is held waiting for its report.
MAX_REPORT_WAIT = timedelta(seconds=30)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["NotificationGatewayService"].full_name

# The role of the services' own accounts (provisioning sends and reads its notices with its
# ORDERLINE_SERVICE_TOKEN). Only it sees a delivery's number and text in clear, and only it
# may send: a carrier's gateway is the system's, not a person's; a clerk sees what was sent
# to a customer in intake's communication log, never here.
CLEAR_VIEW_ROLES = frozenset({"service"})
SEND_ROLES = frozenset({"service"})
# With an identity configuration, what a call needs (common/auth.py): a send needs a verified
# service token; ListDeliveries and GetDelivery answer anyone, masked unless the caller may
# see them in clear; ConfigureFaults is the tests' fault injection, open as the fleet's is.
NEEDS = {f"/{SERVICE_NAME}/SendNotification": SEND_ROLES}


def sees_in_clear(principal: Principal | None) -> bool:
    return principal is not None and principal.has_any(CLEAR_VIEW_ROLES)


_CHANNEL_PREFIX = "CHANNEL_"


def channel_from_proto(value: gateway_pb2.Channel.ValueType) -> Channel | None:
    if value == gateway_pb2.CHANNEL_UNSPECIFIED:
        return None
    try:
        return Channel[gateway_pb2.Channel.Name(value).removeprefix(_CHANNEL_PREFIX)]
    except (ValueError, KeyError):
        raise InvalidArgument("channel", f"unknown channel {value}") from None


def channel_to_proto(channel: Channel) -> gateway_pb2.Channel.ValueType:
    return gateway_pb2.Channel.Value(_CHANNEL_PREFIX + channel.name)


_STATUSES = {
    DeliveryStatus.PENDING: gateway_pb2.DELIVERY_STATUS_PENDING,
    DeliveryStatus.DELIVERED: gateway_pb2.DELIVERY_STATUS_DELIVERED,
    DeliveryStatus.FAILED: gateway_pb2.DELIVERY_STATUS_FAILED,
}


def delivery_to_proto(delivery: Delivery, now: datetime, *, clear: bool) -> gateway_pb2.Delivery:
    """`clear`: the number and text as sent; otherwise masked as in the logs (the number's
    first 3 and last 4 digits, the text's length only)."""
    n = delivery.notification
    status = delivery.status(now)
    message = gateway_pb2.Delivery(
        delivery_id=delivery.delivery_id,
        idempotency_key=n.idempotency_key,
        channel=channel_to_proto(n.channel),
        to=n.to if clear else mask_phone(n.to),
        locale=n.locale,
        text=n.text if clear else mask_text(n.text),
        attempts=delivery.attempts,
        status=_STATUSES[status],
        failure_reason=delivery.failure_reason(now),
    )
    message.delivered_at.FromDatetime(delivery.delivered_at)
    if status is not DeliveryStatus.PENDING and delivery.reported_at is not None:
        message.reported_at.FromDatetime(delivery.reported_at)
    return message


class NotificationGatewayApi(gateway_pb2_grpc.NotificationGatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def SendNotification(
        self, request: gateway_pb2.SendNotificationRequest, context: Context
    ) -> gateway_pb2.SendNotificationResponse:
        try:
            notification = validate(
                request.idempotency_key,
                channel_from_proto(request.channel),
                request.to,
                request.locale,
                request.text,
            )
        except DomainError as exc:
            log.info("notification refused", error=exc.message)
            await abort_with(context, exc)
        delay_ms = self.gateway.faults.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        try:
            result = self.gateway.send(notification)
        except Unavailable as exc:
            log.warning(
                "notification failed (injected)",
                idempotency_key=notification.idempotency_key,
                to=mask_phone(notification.to),
                attempts=self.gateway.attempts(notification.idempotency_key),
            )
            await abort_with(context, exc)
        delivery = result.delivery
        log.info(
            "notification duplicate" if result.duplicate else "notification delivered",
            delivery_id=delivery.delivery_id,
            idempotency_key=notification.idempotency_key,
            channel=notification.channel.value,
            to=mask_phone(notification.to),
            locale=notification.locale,
            text=mask_text(notification.text),
            attempts=delivery.attempts,
        )
        return gateway_pb2.SendNotificationResponse(
            delivery_id=delivery.delivery_id,
            duplicate=result.duplicate,
            status=_STATUSES[delivery.status(self.gateway.now())],
        )

    async def ListDeliveries(
        self, request: gateway_pb2.ListDeliveriesRequest, context: Context
    ) -> gateway_pb2.ListDeliveriesResponse:
        now = self.gateway.now()
        clear = sees_in_clear(caller())
        return gateway_pb2.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(d, now, clear=clear) for d in self.gateway.deliveries()]
        )

    async def GetDelivery(
        self, request: gateway_pb2.GetDeliveryRequest, context: Context
    ) -> gateway_pb2.GetDeliveryResponse:
        try:
            if not request.delivery_id.strip():
                raise InvalidArgument("delivery_id", "required")
            wait = request.wait.ToTimedelta()
            if not timedelta(0) <= wait <= MAX_REPORT_WAIT:
                raise InvalidArgument("wait", "must be between 0 and 30s")
            delivery = self.gateway.delivery(request.delivery_id)
            if delivery is None:
                raise NotFound("delivery", request.delivery_id)
        except DomainError as exc:
            await abort_with(context, exc)
        # A long poll: held until the carrier's report is due, never past the asked wait.
        hold = min(wait, delivery.report_in(self.gateway.now()))
        if hold > timedelta(0):
            await asyncio.sleep(hold.total_seconds())
        now = self.gateway.now()
        status = delivery.status(now)
        if status is not DeliveryStatus.PENDING:
            log.info(
                "delivery report",
                delivery_id=delivery.delivery_id,
                idempotency_key=delivery.notification.idempotency_key,
                status=status.value,
                to=mask_phone(delivery.notification.to),
            )
        return gateway_pb2.GetDeliveryResponse(
            delivery=delivery_to_proto(delivery, now, clear=sees_in_clear(caller()))
        )

    async def ConfigureFaults(
        self, request: gateway_pb2.ConfigureFaultsRequest, context: Context
    ) -> gateway_pb2.ConfigureFaultsResponse:
        try:
            faults = self.gateway.configure(
                request.failure_rate,
                request.delay_ms,
                request.delivery_failure_rate
                if request.HasField("delivery_failure_rate")
                else None,
                request.report_delay_ms if request.HasField("report_delay_ms") else None,
            )
        except DomainError as exc:
            await abort_with(context, exc)
        log.warning(
            "faults configured",
            failure_rate=faults.failure_rate,
            delay_ms=faults.delay_ms,
            delivery_failure_rate=faults.delivery_failure_rate,
            report_delay_ms=faults.report_delay_ms,
        )
        return gateway_pb2.ConfigureFaultsResponse()
