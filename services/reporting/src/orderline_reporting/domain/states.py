"""Order states by their TM Forum TMF641 names, and the one mapping from the OrderState enum."""

from __future__ import annotations

from orderline.order.v1 import order_pb2

# In lifecycle order: the order reports list them in.
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "inProgress"
COMPLETED = "completed"
REJECTED = "rejected"
PENDING = "pending"
HELD = "held"
FAILED = "failed"
ASSESSING_CANCELLATION = "assessingCancellation"
PENDING_CANCELLATION = "pendingCancellation"
CANCELLED = "cancelled"

ORDER_STATES: tuple[str, ...] = (
    ACKNOWLEDGED,
    PENDING,
    IN_PROGRESS,
    HELD,
    ASSESSING_CANCELLATION,
    PENDING_CANCELLATION,
    COMPLETED,
    REJECTED,
    FAILED,
    CANCELLED,
)

# TMF641's final states: once an order is in one, no transition leaves it.
TERMINAL_STATES = frozenset({COMPLETED, REJECTED, FAILED, CANCELLED})

_BY_ENUM: dict[int, str] = {
    order_pb2.ORDER_STATE_ACKNOWLEDGED: ACKNOWLEDGED,
    order_pb2.ORDER_STATE_IN_PROGRESS: IN_PROGRESS,
    order_pb2.ORDER_STATE_COMPLETED: COMPLETED,
    order_pb2.ORDER_STATE_REJECTED: REJECTED,
    order_pb2.ORDER_STATE_PENDING: PENDING,
    order_pb2.ORDER_STATE_HELD: HELD,
    order_pb2.ORDER_STATE_FAILED: FAILED,
    order_pb2.ORDER_STATE_ASSESSING_CANCELLATION: ASSESSING_CANCELLATION,
    order_pb2.ORDER_STATE_PENDING_CANCELLATION: PENDING_CANCELLATION,
    order_pb2.ORDER_STATE_CANCELLED: CANCELLED,
}


class UnknownState(ValueError):
    pass


def tmf_state(value: int) -> str:
    """OrderState enum value -> TMF641 name; UNSPECIFIED and unknown values are refused."""
    try:
        return _BY_ENUM[value]
    except KeyError:
        raise UnknownState(f"order state {value} has no TMF641 name") from None
