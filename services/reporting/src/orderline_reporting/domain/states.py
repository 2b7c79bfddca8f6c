"""Order states by their TM Forum TMF641 names, and the one mapping from the OrderState enum."""

from __future__ import annotations

from orderline_runtime.order_states import TMF_NAMES

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


class UnknownState(ValueError):
    pass


def tmf_state(value: int) -> str:
    """OrderState enum value -> TMF641 name; UNSPECIFIED and unknown values are refused."""
    try:
        return TMF_NAMES[value]
    except KeyError:
        raise UnknownState(f"order state {value} has no TMF641 name") from None
