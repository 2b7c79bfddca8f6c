"""OrderService over gRPC: translation between messages and the application, nothing more."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_intake.app.orders import (
    PROTO_TO_STATE,
    STATE_TO_PROTO,
    OrderApp,
    history_messages,
    milestone_messages,
    utcnow,
)
from orderline_intake.domain.masking import customer_for
from orderline_intake.domain.order import Customer, NewOrder, Order
from orderline_runtime.errors import Violations
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.telemetry import order_scope

MAX_PAGE = 500
DEFAULT_PAGE = 50
WATCH_POLL_SECONDS = 0.25


def order_message(order: Order, roles: frozenset[str]) -> order_pb2.Order:
    c = customer_for(roles, order.customer)
    msg = order_pb2.Order(
        id=order.id,
        client_request_id=order.client_request_id,
        business_type=order.business_type,
        state=STATE_TO_PROTO[order.state],
        customer=order_pb2.Customer(
            name=c.name, phone=c.phone, id_number=c.id_number, address=c.address, locale=c.locale
        ),
        device_id=order.device_id,
        plan=order.plan,
        milestones=milestone_messages(order),
        history=history_messages(order.history),
        created_by=order.created_by,
        state_reason=order.state_reason,
        voucher_id=order.voucher_id,
        dossier_id=order.dossier_id,
        alarm_id=order.alarm_id,
    )
    msg.created_at.FromDatetime(order.created_at)
    msg.updated_at.FromDatetime(order.updated_at or order.created_at)
    return msg


def _page_token(order_id: str) -> str:
    return base64.urlsafe_b64encode(order_id.encode()).decode()


class OrderServiceApi(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, app: OrderApp) -> None:
        self.app = app

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: Any
    ) -> order_pb2.CreateOrderResponse:
        principal = current_principal()
        c = request.customer
        new = NewOrder(
            client_request_id=request.client_request_id.strip(),
            business_type=request.business_type.strip(),
            customer=Customer(
                name=c.name.strip(),
                phone=c.phone.strip(),
                id_number=c.id_number.strip().upper(),
                address=c.address.strip(),
                locale=c.locale.strip() or "zh-CN",
            ),
            device_id=request.device_id.strip(),
            plan=request.plan.strip(),
        )
        order, created = await self.app.create(new, principal.subject)
        return order_pb2.CreateOrderResponse(
            order=order_message(order, principal.roles), created=created
        )

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.get(order_id)
        return order_pb2.GetOrderResponse(order=order_message(order, principal.roles))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Any
    ) -> order_pb2.ListOrdersResponse:
        principal = current_principal()
        v = Violations()
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"between 0 and {MAX_PAGE}")
        after: str | None = None
        if request.page_token:
            try:
                after = base64.urlsafe_b64decode(request.page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                v.add("page_token", "not a token this service issued")
        if (
            request.state not in PROTO_TO_STATE
            and request.state != order_pb2.ORDER_STATE_UNSPECIFIED
        ):
            v.add("state", "unknown state")
        v.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE
        state = PROTO_TO_STATE[request.state].value if request.state in PROTO_TO_STATE else None
        orders = await self.app.list_orders(
            limit=limit, after_id=after, state=state, business_type=request.business_type or None
        )
        token = _page_token(orders[-1].id) if len(orders) == limit else ""
        return order_pb2.ListOrdersResponse(
            orders=[order_message(o, principal.roles) for o in orders], next_page_token=token
        )

    async def WatchOrders(
        self, request: order_pb2.WatchOrdersRequest, context: Any
    ) -> AsyncIterator[order_pb2.WatchOrdersResponse]:
        principal = current_principal()
        ids = [_required_order_id(i, "order_ids") for i in request.order_ids]
        sent: dict[str, int] = {}
        since: datetime | None = None
        if ids:
            for order_id in ids:
                order = await self.app.get(order_id)
                sent[order.id] = order.version
                since = (
                    min(since, order.updated_at) if since and order.updated_at else order.updated_at
                )
                yield order_pb2.WatchOrdersResponse(order=order_message(order, principal.roles))
        else:
            since = utcnow()
        assert since is not None
        while True:
            await asyncio.sleep(WATCH_POLL_SECONDS)
            for order in await self.app.changed_since(since, ids):
                if sent.get(order.id) == order.version:
                    continue
                sent[order.id] = order.version
                if order.updated_at:
                    # Overlap by a little: clocks of replicas differ, duplicates are filtered.
                    since = max(since, order.updated_at - timedelta(seconds=1))
                yield order_pb2.WatchOrdersResponse(order=order_message(order, principal.roles))


def _required_order_id(order_id: str, field: str = "order_id") -> str:
    v = Violations()
    order_id = order_id.strip()
    if not order_id:
        v.add(field, "required")
    elif len(order_id) > 36:
        v.add(field, "an order id is a UUID of 36 characters")
    v.raise_if_any()
    return order_id
