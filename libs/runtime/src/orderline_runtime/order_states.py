"""TMF641 names of the wire `OrderState` enum, read from the `tmf_name` option that order.proto
declares on each value: the names are spelled once, in the contract, and every service and
tool maps through this."""

from __future__ import annotations

from orderline.order.v1 import order_pb2

TMF_NAMES: dict[int, str] = {
    value.number: value.GetOptions().Extensions[order_pb2.tmf_name]
    for value in order_pb2.OrderState.DESCRIPTOR.values
    if value.number != order_pb2.ORDER_STATE_UNSPECIFIED
}
BY_TMF_NAME: dict[str, int] = {name: number for number, name in TMF_NAMES.items()}


def tmf_name(state: int) -> str:
    return TMF_NAMES.get(state, "unspecified")
