"""Every wire order state has its TMF641 name, and only one."""

from __future__ import annotations

from orderline.order.v1 import order_pb2
from orderline_runtime.order_states import BY_TMF_NAME, TMF_NAMES


def test_every_state_but_unspecified_has_a_tmf641_name() -> None:
    numbers = {v.number for v in order_pb2.OrderState.DESCRIPTOR.values}
    assert set(TMF_NAMES) == numbers - {order_pb2.ORDER_STATE_UNSPECIFIED}
    assert len(BY_TMF_NAME) == len(TMF_NAMES)
    assert all(TMF_NAMES.values()), "a state without its tmf_name option in order.proto"


def test_names_are_the_tmf641_camel_case_ones() -> None:
    assert TMF_NAMES[order_pb2.ORDER_STATE_IN_PROGRESS] == "inProgress"
    assert TMF_NAMES[order_pb2.ORDER_STATE_ASSESSING_CANCELLATION] == "assessingCancellation"
    assert BY_TMF_NAME["pendingCancellation"] == order_pb2.ORDER_STATE_PENDING_CANCELLATION
