"""The order as it appears in events and on the wire: domain values to contract messages.

Shared by the events intake emits (`order.completed` carries milestones and history) and the
API's order message, so both spell states the same way (the contract's TMF641 names).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from orderline.events.v1 import order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_intake.domain.order import Order, StateChange
from orderline_intake.domain.states import OrderState
from orderline_runtime.order_states import BY_TMF_NAME
from orderline_runtime.timestamps import set_timestamp

STATE_TO_PROTO: dict[OrderState, order_pb2.OrderState.ValueType] = {
    state: BY_TMF_NAME[state.value]  # type: ignore[misc]
    for state in OrderState
}
PROTO_TO_STATE = {number: state for state, number in STATE_TO_PROTO.items()}


def add_milestones(
    target: RepeatedCompositeFieldContainer[order_pb2.Milestone], order: Order
) -> None:
    """Appends the order's milestones, earliest first, to a repeated `Milestone` field: built
    in place, not built apart and then copied in (issue #8: every order message has them)."""
    for name, at in sorted(order.milestones.items(), key=itemgetter(1)):
        set_timestamp(target.add(name=name).reached_at, at)


def add_history(
    target: RepeatedCompositeFieldContainer[order_pb2.StateChange],
    history: Sequence[StateChange],
) -> None:
    """Appends the changes, in order, to a repeated `StateChange` field, built in place."""
    for c in history:
        set_timestamp(
            target.add(
                from_state=STATE_TO_PROTO[c.from_state],
                to_state=STATE_TO_PROTO[c.to_state],
                actor=c.actor,
                reason_code=c.reason_code,
            ).at,
            c.at,
        )


def order_created(order: Order, actor: str) -> order_events_pb2.OrderCreated:
    return order_events_pb2.OrderCreated(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        plan=order.plan,
        created_by=actor,
        locale=order.customer.locale,
    )


def order_approved(order: Order, approved_by: str) -> order_events_pb2.OrderApproved:
    return order_events_pb2.OrderApproved(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        plan=order.plan,
        locale=order.customer.locale,
        approved_by=approved_by,
    )


def state_changed(order: Order, change: StateChange) -> order_events_pb2.OrderStateChanged:
    return order_events_pb2.OrderStateChanged(
        order_id=order.id,
        business_type=order.business_type,
        from_state=STATE_TO_PROTO[change.from_state],
        to_state=STATE_TO_PROTO[change.to_state],
        actor=change.actor,
        reason_code=change.reason_code,
    )


def review_queued(order: Order) -> order_events_pb2.OrderReviewQueued:
    return order_events_pb2.OrderReviewQueued(
        order_id=order.id,
        business_type=order.business_type,
        reason_codes=[r.code for r in order.review_reasons],
    )


def information_requested(
    order: Order, requested_by: str, reason_code: str
) -> order_events_pb2.OrderInformationRequested:
    return order_events_pb2.OrderInformationRequested(
        order_id=order.id,
        business_type=order.business_type,
        field_paths=order.requested_fields,
        requested_by=requested_by,
        reason_code=reason_code,
    )


def order_amended(
    order: Order, field_paths: Sequence[str], amended_by: str
) -> order_events_pb2.OrderAmended:
    return order_events_pb2.OrderAmended(
        order_id=order.id,
        business_type=order.business_type,
        field_paths=field_paths,
        amended_by=amended_by,
    )


def order_completed(order: Order) -> order_events_pb2.OrderCompleted:
    completed = order_events_pb2.OrderCompleted(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        voucher_id=order.voucher_id,
    )
    add_milestones(completed.milestones, order)
    add_history(completed.history, order.history)
    set_timestamp(completed.created_at, order.created_at)
    return completed


def jeopardy_raised(order: Order, milestone: str) -> order_events_pb2.JeopardyRaised:
    event = order_events_pb2.JeopardyRaised(
        order_id=order.id,
        business_type=order.business_type,
        milestone=milestone,
        state=STATE_TO_PROTO[order.state],
    )
    set_timestamp(event.due_at, order.milestone_dues[milestone])
    set_timestamp(event.raised_at, order.jeopardy[milestone])
    return event


def hold_requested(
    order: Order, change: StateChange, order_version: int
) -> order_events_pb2.OrderHoldRequested:
    """A person's hold, for provisioning to pause the order's job. `order_version`: the
    version the hold writes (hold and resume are applied in that order downstream)."""
    return order_events_pb2.OrderHoldRequested(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        reason_code=change.reason_code,
        held_by=change.actor,
        order_version=order_version,
    )


def resume_requested(
    order: Order, change: StateChange, order_version: int
) -> order_events_pb2.OrderResumeRequested:
    return order_events_pb2.OrderResumeRequested(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        reason_code=change.reason_code,
        resumed_by=change.actor,
        order_version=order_version,
    )
