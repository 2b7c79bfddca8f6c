"""Orders to wire messages, with the customer masked for the caller's roles."""

from __future__ import annotations

from orderline.order.v1 import order_pb2
from orderline_intake.app.payloads import STATE_TO_PROTO, history_messages, milestone_messages
from orderline_intake.domain.masking import customer_for
from orderline_intake.domain.order import Order


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
