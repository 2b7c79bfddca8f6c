"""The cancellation request as plain data: where it goes, how it moves the order and itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_intake.domain.cancellation import (
    Cancellation,
    CancellationState,
    PastPointOfNoReturn,
    Route,
    assess,
    request_fingerprint,
)
from orderline_intake.domain.order import PROVISIONING, Customer, NewOrder, Order
from orderline_intake.domain.states import InvalidTransition, OrderState, Trigger

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
S = OrderState


def an_order(state: OrderState = S.ACKNOWLEDGED) -> Order:
    new = NewOrder(
        client_request_id="r-1",
        business_type="broadband_install",
        customer=Customer("李娜", "+8613912345678", "11010519491231002X", "上海", "zh-CN"),
        device_id="CPE-0001",
        plan="fiber-500m",
    )
    order = Order.record("o-1", new, "clerk", T0)
    order.state = state
    return order


@pytest.mark.parametrize(
    ("state", "route"),
    [
        (S.ACKNOWLEDGED, Route.DIRECT),
        (S.PENDING, Route.DIRECT),
        (S.IN_PROGRESS, Route.ASK_PROVISIONING),
        (S.HELD, Route.ASK_PROVISIONING),
    ],
)
def test_an_order_never_approved_is_cancelled_directly(state: OrderState, route: Route) -> None:
    assert assess(an_order(state)) is route


def test_past_the_point_of_no_return_says_when_in_both_languages() -> None:
    order = an_order(S.IN_PROGRESS)
    order.milestones["service_activated"] = T0 + timedelta(hours=1)
    with pytest.raises(PastPointOfNoReturn) as past:
        assess(order)
    assert "2026-12-07 10:00:00 UTC" in past.value.text.en
    assert "无法撤单" in past.value.text.zh_cn


def test_a_direct_cancellation_records_three_steps_by_the_clerk() -> None:
    order = an_order(S.PENDING)
    c, change = Cancellation.request("c-1", "q-1", order, "CUSTOMER_REQUEST", "clerk-li", T0)
    assert change.to_state is S.ASSESSING_CANCELLATION and change.actor == "clerk-li"
    c.complete_directly(order, T0)
    assert order.state is S.CANCELLED and c.state is CancellationState.DONE
    assert [(h.to_state, h.actor) for h in order.history[-3:]] == [
        (S.ASSESSING_CANCELLATION, "clerk-li"),
        (S.PENDING_CANCELLATION, "clerk-li"),
        (S.CANCELLED, "clerk-li"),
    ]
    assert c.request_fingerprint == request_fingerprint("o-1", "CUSTOMER_REQUEST")
    assert c.order_state_before == "pending"


def test_provisioning_completes_with_the_rollback_once() -> None:
    order = an_order(S.IN_PROGRESS)
    c, _ = Cancellation.request("c-1", "q-1", order, "OTHER", "clerk", T0)
    c.assessing()
    assert c.accepted(order, T0) and order.state is S.PENDING_CANCELLATION
    assert c.accepted(order, T0) == []  # a late acceptance changes nothing
    c.completed(order, "ROLLED_BACK", 3, T0)
    assert order.state is S.CANCELLED and c.state is CancellationState.DONE
    assert c.rolled_back and c.rolled_back_to == 3 and "版本 3" in c.detail
    assert not c.open


def test_a_decline_restores_a_hold_with_its_actor_and_reason() -> None:
    order = an_order(S.IN_PROGRESS)
    order.apply(Trigger.HOLD, PROVISIONING, "DEVICE_ABNORMAL", T0)
    c, _ = Cancellation.request("c-1", "q-1", order, "OTHER", "clerk", T0)
    changes = c.declined(order, "SERVICE_ALREADY_ACTIVATED", T0)
    assert [ch.to_state for ch in changes] == [S.IN_PROGRESS, S.HELD]
    assert order.held_for_device and order.state_reason == "DEVICE_ABNORMAL"
    assert c.state is CancellationState.TERMINATED
    assert c.decline_reason == "SERVICE_ALREADY_ACTIVATED"


def test_a_completed_order_cannot_be_cancelled() -> None:
    with pytest.raises(InvalidTransition):
        Cancellation.request("c", "q", an_order(S.COMPLETED), "OTHER", "clerk", T0)
