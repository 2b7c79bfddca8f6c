"""The order's states (TMF641 names) and the one table of allowed transitions.

The table is data: docs/order-lifecycle.md publishes it, and every change of state goes
through `next_state`.
"""

from __future__ import annotations

from enum import StrEnum


class OrderState(StrEnum):
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


class Trigger(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_INFORMATION = "request_information"
    AMEND = "amend"
    HOLD = "hold"
    RESUME = "resume"
    COMPLETE = "complete"
    FAIL = "fail"
    REQUEST_CANCELLATION = "request_cancellation"
    ACCEPT_CANCELLATION = "accept_cancellation"
    CONFIRM_CANCELLATION = "confirm_cancellation"
    DECLINE_CANCELLATION = "decline_cancellation"


S = OrderState
T = Trigger

# (from, trigger) -> to. Anything absent is refused.
TRANSITIONS: dict[tuple[OrderState, Trigger], OrderState] = {
    (S.ACKNOWLEDGED, T.APPROVE): S.IN_PROGRESS,
    (S.ACKNOWLEDGED, T.REJECT): S.REJECTED,
    (S.ACKNOWLEDGED, T.REQUEST_INFORMATION): S.PENDING,
    (S.PENDING, T.AMEND): S.ACKNOWLEDGED,
    # An amended order that was awaiting review awaits it again (the automatic checks run anew).
    (S.ACKNOWLEDGED, T.AMEND): S.ACKNOWLEDGED,
    (S.IN_PROGRESS, T.HOLD): S.HELD,
    # A person holds an order provisioning holds for its device, so that the job does not go
    # on by itself when the device recovers (one person's hold at a time: app/orders.py).
    (S.HELD, T.HOLD): S.HELD,
    (S.HELD, T.RESUME): S.IN_PROGRESS,
    (S.IN_PROGRESS, T.COMPLETE): S.COMPLETED,
    (S.IN_PROGRESS, T.FAIL): S.FAILED,
    (S.HELD, T.FAIL): S.FAILED,
    (S.ACKNOWLEDGED, T.REQUEST_CANCELLATION): S.ASSESSING_CANCELLATION,
    (S.PENDING, T.REQUEST_CANCELLATION): S.ASSESSING_CANCELLATION,
    (S.IN_PROGRESS, T.REQUEST_CANCELLATION): S.ASSESSING_CANCELLATION,
    (S.HELD, T.REQUEST_CANCELLATION): S.ASSESSING_CANCELLATION,
    (S.ASSESSING_CANCELLATION, T.ACCEPT_CANCELLATION): S.PENDING_CANCELLATION,
    (S.PENDING_CANCELLATION, T.CONFIRM_CANCELLATION): S.CANCELLED,
    # Provisioning found the job past its point of no return: the order goes on. (An order
    # that was held before is held again at once: docs/order-lifecycle.md#cancellation.)
    (S.ASSESSING_CANCELLATION, T.DECLINE_CANCELLATION): S.IN_PROGRESS,
}

# While a cancellation is assessed or carried out, and after it.
CANCELLATION_STATES = frozenset({S.ASSESSING_CANCELLATION, S.PENDING_CANCELLATION, S.CANCELLED})

TERMINAL = frozenset({S.COMPLETED, S.REJECTED, S.FAILED, S.CANCELLED})


class InvalidTransition(Exception):
    def __init__(self, state: OrderState, trigger: Trigger) -> None:
        allowed = sorted(s.value for (s, t) in TRANSITIONS if t is trigger)
        super().__init__(
            f"cannot {trigger.value} an order that is {state.value}"
            f" ({trigger.value} applies to {', '.join(allowed) or 'no state'})"
        )
        self.state = state
        self.trigger = trigger


def next_state(state: OrderState, trigger: Trigger) -> OrderState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(state, trigger) from None
