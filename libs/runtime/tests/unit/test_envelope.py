"""Reading an event envelope: what cannot be handled is a PoisonMessage with a reason."""

from __future__ import annotations

import pytest

from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.messaging.envelope import build_envelope, parse_envelope


def test_envelope_round_trips_with_its_payload() -> None:
    env = build_envelope(
        "order.approved",
        order_events_pb2.OrderApproved(order_id="O-1", plan="fibre-500"),
        producer="intake",
        order_id="O-1",
    )
    event = parse_envelope(env.SerializeToString(), "orderline.order.approved")
    assert (event.id, event.event_type, event.order_id) == (env.id, "order.approved", "O-1")
    assert event.payload(order_events_pb2.OrderApproved).plan == "fibre-500"


def test_ids_are_time_ordered() -> None:
    ids = [build_envelope("order.created", order_events_pb2.OrderCreated(), producer="intake").id
           for _ in range(50)]  # fmt: skip
    assert ids == sorted(ids)
    assert len(set(ids)) == 50


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe\x00garbage", "not an Envelope"),
        (envelope_pb2.Envelope(type="order.approved").SerializeToString(), "lacks id, producer"),
        (
            envelope_pb2.Envelope(id="e", type="order.approved", producer="p").SerializeToString(),
            "no payload",
        ),
    ],
)
def test_unreadable_envelopes_are_poison(data: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        parse_envelope(data, "orderline.order.approved")


def test_type_not_matching_subject_and_wrong_payload_are_poison() -> None:
    env = build_envelope("order.created", order_events_pb2.OrderCreated(), producer="intake")
    with pytest.raises(PoisonMessage, match="does not match subject"):
        parse_envelope(env.SerializeToString(), "orderline.order.approved")
    event = parse_envelope(env.SerializeToString(), "orderline.order.created")
    with pytest.raises(PoisonMessage, match=r"expected 'orderline\.events\.v1\.OrderApproved'"):
        event.payload(order_events_pb2.OrderApproved)
