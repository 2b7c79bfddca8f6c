"""TMF641 names of the wire `OrderState` enum: the one mapping every service and tool shares."""

from __future__ import annotations

from orderline.order.v1 import order_pb2

TMF_NAMES: dict[int, str] = {
    order_pb2.ORDER_STATE_ACKNOWLEDGED: "acknowledged",
    order_pb2.ORDER_STATE_IN_PROGRESS: "inProgress",
    order_pb2.ORDER_STATE_COMPLETED: "completed",
    order_pb2.ORDER_STATE_REJECTED: "rejected",
    order_pb2.ORDER_STATE_PENDING: "pending",
    order_pb2.ORDER_STATE_HELD: "held",
    order_pb2.ORDER_STATE_FAILED: "failed",
    order_pb2.ORDER_STATE_ASSESSING_CANCELLATION: "assessingCancellation",
    order_pb2.ORDER_STATE_PENDING_CANCELLATION: "pendingCancellation",
    order_pb2.ORDER_STATE_CANCELLED: "cancelled",
}
BY_TMF_NAME: dict[str, int] = {name: number for number, name in TMF_NAMES.items()}


def tmf_name(state: int) -> str:
    return TMF_NAMES.get(state, "unspecified")
