"""Cancellation: a request of its own (TMF641 CancelServiceOrder), with its own id and state.

How a request is judged (`assess`) and how it moves the order and itself (`Cancellation`),
plain data and functions; the application runs them in one unit of work with the events.

- An order never approved (`acknowledged`, `pending`) has no provisioning job: it is cancelled
  at once (request, accept, confirm in one transaction).
- An order in provisioning (`inProgress`, `held`) waits in `assessingCancellation` for
  provisioning, which stops its job and undoes its device work (`pendingCancellation`, then
  `cancelled`) or declines past the point of no return (the order goes on).
- An order whose service was activated is past the point of no return: refused at once.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime

from orderline_intake.domain.order import PROVISIONING, Order, StateChange
from orderline_intake.domain.states import OrderState, Trigger
from orderline_intake.domain.text import Says, says

# The milestone after which a cancellation can no longer undo the work.
POINT_OF_NO_RETURN = "service_activated"

CANCEL_REASONS = frozenset(
    {
        "CUSTOMER_REQUEST",
        "CUSTOMER_WITHDREW",
        "DUPLICATE_ORDER",
        "ADDRESS_NOT_SERVICEABLE",
        "PRICE_OR_PLAN_CHANGE",
        "ORDER_ERROR",
        "OTHER",
    }
)

# Why provisioning declined: the job had activated the service.
SERVICE_ALREADY_ACTIVATED = "SERVICE_ALREADY_ACTIVATED"

# How provisioning compensated (provisioning.cancellation_completed's `compensation`).
NOTHING_TO_UNDO = "NOTHING_TO_UNDO"
ROLLED_BACK = "ROLLED_BACK"
ROLLED_BACK_AT_FAILURE = "ROLLED_BACK_AT_FAILURE"

# History reason codes of the steps provisioning takes.
ACCEPTED_BY_PROVISIONING = "CANCELLATION_ACCEPTED"
NO_JOB_STARTED = "NO_PROVISIONING_STARTED"


class CancellationState(enum.StrEnum):
    """TMF641 CancelServiceOrder states."""

    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    DONE = "done"
    TERMINATED = "terminated"


class Route(enum.Enum):
    """What a cancellation of the order in its present state means."""

    DIRECT = "direct"  # no provisioning job: cancelled at once
    ASK_PROVISIONING = "ask_provisioning"  # a job may be working: provisioning decides


@dataclass(frozen=True)
class PastPointOfNoReturn(Exception):
    """The order's service was activated: a cancellation cannot undo it."""

    order_id: str
    activated_at: datetime

    @property
    def text(self) -> Says:
        at = self.activated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return says(
            f"order {self.order_id} is past its point of no return: the service was activated "
            f"at {at}, so a cancellation cannot undo it; take a termination order instead",
            f"工单 {self.order_id} 的业务已于 {at} 开通, 已无法撤单; 如需停止服务, 请办理拆机业务",
        )


def assess(order: Order) -> Route:
    """Where a cancellation of the order goes. Raises PastPointOfNoReturn once the service is
    active; a state the table does not let cancel (completed, rejected, …) is refused by the
    state machine when the request is applied."""
    activated = order.milestones.get(POINT_OF_NO_RETURN)
    if activated is not None:
        raise PastPointOfNoReturn(order.id, activated)
    if order.state in (OrderState.ACKNOWLEDGED, OrderState.PENDING):
        return Route.DIRECT
    return Route.ASK_PROVISIONING


def request_fingerprint(order_id: str, reason_code: str) -> str:
    """What a cancel request asks for: equal for a retry, different for another request."""
    return hashlib.sha256(f"{order_id}\x1f{reason_code}".encode()).hexdigest()


@dataclass
class Cancellation:
    id: str
    client_request_id: str
    order_id: str
    reason_code: str
    requested_by: str
    requested_at: datetime
    state: CancellationState = CancellationState.ACKNOWLEDGED
    request_fingerprint: str = ""
    decided_at: datetime | None = None
    decline_reason: str = ""
    # "EN | 中文": how it ended.
    detail: str = ""
    rolled_back: bool = False
    rolled_back_to: int = 0
    # The order's state before the request (to restore a hold when provisioning declines).
    order_state_before: str = ""

    @property
    def open(self) -> bool:
        return self.state in (CancellationState.ACKNOWLEDGED, CancellationState.IN_PROGRESS)

    @classmethod
    def request(
        cls,
        cancellation_id: str,
        client_request_id: str,
        order: Order,
        reason_code: str,
        actor: str,
        now: datetime,
    ) -> tuple[Cancellation, StateChange]:
        """Records the request and moves the order to assessingCancellation (the state machine
        refuses an order that cannot be cancelled, e.g. completed)."""
        before = order.state
        change = order.apply(Trigger.REQUEST_CANCELLATION, actor, reason_code, now)
        cancellation = cls(
            id=cancellation_id,
            client_request_id=client_request_id,
            order_id=order.id,
            reason_code=reason_code,
            requested_by=actor,
            requested_at=now,
            request_fingerprint=request_fingerprint(order.id, reason_code),
            order_state_before=before.value,
        )
        return cancellation, change

    def assessing(self) -> None:
        """Provisioning has been asked (TMF641 inProgress)."""
        self.state = CancellationState.IN_PROGRESS

    def complete_directly(self, order: Order, now: datetime) -> list[StateChange]:
        """No provisioning job exists: intake accepts and confirms at once."""
        reason = "NO_PROVISIONING_STARTED"
        changes = [
            order.apply(Trigger.ACCEPT_CANCELLATION, self.requested_by, reason, now),
            order.apply(Trigger.CONFIRM_CANCELLATION, self.requested_by, reason, now),
        ]
        self._done(
            now,
            says(
                "cancelled before provisioning started: nothing to undo",
                "开通作业尚未开始即已撤单, 无需回退",
            ),
        )
        return changes

    def accepted(self, order: Order, now: datetime) -> list[StateChange]:
        """Provisioning stops the job and undoes its work: the order is pendingCancellation.
        Nothing when it already is (a redelivered or late acceptance)."""
        if order.state is not OrderState.ASSESSING_CANCELLATION:
            return []
        return [
            order.apply(Trigger.ACCEPT_CANCELLATION, PROVISIONING, ACCEPTED_BY_PROVISIONING, now)
        ]

    def completed(
        self, order: Order, compensation: str, rolled_back_to: int | None, now: datetime
    ) -> list[StateChange]:
        """Provisioning's job is cancelled and its device work undone: the order is
        cancelled, the request done."""
        changes = self.accepted(order, now)
        reason = compensation or NOTHING_TO_UNDO
        changes.append(order.apply(Trigger.CONFIRM_CANCELLATION, PROVISIONING, reason, now))
        self.rolled_back = rolled_back_to is not None
        self.rolled_back_to = rolled_back_to or 0
        if rolled_back_to is not None:
            text = says(
                f"cancelled; the device's configuration was rolled back to version "
                f"{rolled_back_to}",
                f"已撤单, 设备配置已回退到版本 {rolled_back_to}",
            )
        else:
            text = says(
                "cancelled; provisioning had not changed the device",
                "已撤单, 开通作业尚未改动设备配置",
            )
        self._done(now, text)
        return changes

    def declined(self, order: Order, reason_code: str, now: datetime) -> list[StateChange]:
        """Provisioning found the job past its point of no return: the order goes on (held
        again when it was held before the request), the request is terminated."""
        reason = reason_code or SERVICE_ALREADY_ACTIVATED
        changes = [order.apply(Trigger.DECLINE_CANCELLATION, PROVISIONING, reason, now)]
        if self.order_state_before == OrderState.HELD.value:
            hold = next((c for c in reversed(order.history) if c.to_state is OrderState.HELD), None)
            actor = hold.actor if hold is not None else PROVISIONING
            code = hold.reason_code if hold is not None else reason
            changes.append(order.apply(Trigger.HOLD, actor, code, now))
        self.state = CancellationState.TERMINATED
        self.decline_reason = reason
        self.decided_at = now
        self.detail = str(
            says(
                "declined: the service was activated before provisioning could stop; the "
                "order goes on",
                "无法撤单: 开通作业在停止前已开通业务, 工单继续处理",
            )
        )
        return changes

    def _done(self, now: datetime, text: Says) -> None:
        self.state = CancellationState.DONE
        self.decided_at = now
        self.detail = str(text)
