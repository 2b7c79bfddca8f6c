"""The order's state machine and validation, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderline_intake.domain.masking import customer_for
from orderline_intake.domain.order import Customer, NewOrder, Order
from orderline_intake.domain.states import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    OrderState,
    Trigger,
    next_state,
)

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def new_order(**overrides: object) -> NewOrder:
    customer = Customer(
        name="张伟",
        phone="+8613800138000",
        id_number="11010519491231002X",
        address="北京市朝阳区建国路88号",
        locale="zh-CN",
    )
    fields: dict[str, object] = {
        "client_request_id": "req-1",
        "business_type": "broadband_install",
        "customer": customer,
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
    }
    fields.update(overrides)
    return NewOrder(**fields)  # type: ignore[arg-type]


def test_approved_order_completes_only_when_active_and_notified() -> None:
    order = Order.record("o-1", new_order(), "clerk-1", NOW)
    order.apply(Trigger.APPROVE, "reviewer", "OK", NOW)
    order.reach("service_activated", NOW)
    assert not order.ready_to_complete
    order.reach("customer_notified", NOW)
    assert order.ready_to_complete


def test_milestone_is_recorded_once() -> None:
    order = Order.record("o-1", new_order(), "clerk-1", NOW)
    assert order.reach("review_approved", NOW)
    assert not order.reach("review_approved", NOW)


def test_held_order_cannot_complete() -> None:
    order = Order.record("o-1", new_order(), "clerk-1", NOW)
    order.apply(Trigger.APPROVE, "reviewer", "OK", NOW)
    order.apply(Trigger.HOLD, "provisioning", "DEVICE_ABNORMAL", NOW)
    with pytest.raises(InvalidTransition):
        order.apply(Trigger.COMPLETE, "provisioning", "X", NOW)


def test_every_transition_carries_actor_and_reason_in_history() -> None:
    order = Order.record("o-1", new_order(), "clerk-1", NOW)
    order.apply(Trigger.APPROVE, "reviewer-7", "AUTO", NOW)
    last = order.history[-1]
    assert (last.from_state, last.to_state) == (OrderState.ACKNOWLEDGED, OrderState.IN_PROGRESS)
    assert (last.actor, last.reason_code) == ("reviewer-7", "AUTO")


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_no_transition_leaves_a_terminal_state(terminal: OrderState) -> None:
    for trigger in Trigger:
        with pytest.raises(InvalidTransition):
            next_state(terminal, trigger)


def test_every_non_terminal_state_can_be_left() -> None:
    leavable = {source for source, _ in TRANSITIONS}
    assert set(OrderState) - TERMINAL == leavable


def test_pii_is_masked_for_roles_that_do_not_need_it() -> None:
    c = new_order().customer
    masked = customer_for(frozenset({"manager"}), c)
    assert masked.phone == "+86138****8000"
    assert "1949" not in masked.id_number
    assert customer_for(frozenset({"clerk"}), c) == c


def test_domain_states_are_the_contracts_tmf641_names() -> None:
    """order.proto spells each state's TMF641 name once; the domain's enum must not drift."""
    from orderline_runtime.order_states import TMF_NAMES

    assert {s.value for s in OrderState} == set(TMF_NAMES.values())
