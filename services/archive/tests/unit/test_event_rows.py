"""What the archive keeps of an event and reads back from it (app/sealing.py): the cheaper
conversions on the per-event path give exactly what the protobuf library's general ones give."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from orderline.events.v1 import order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_archive.adapters.repository import EventRow
from orderline_archive.app.sealing import (
    _PAYLOAD_JSON,
    completion_payload,
    event_row,
    event_time,
    milestone_names,
)
from orderline_runtime.messaging.envelope import build_envelope, parse_envelope

_TEXT = st.text(max_size=12)


def kept(payload: order_events_pb2.OrderCompleted) -> str:
    """The payload as the archive keeps it: through the envelope, as the consumer sees it."""
    env = build_envelope("order.completed", payload, producer="intake", order_id="O-1")
    received = parse_envelope(env.SerializeToString(), "orderline.order.completed")
    return event_row(received, received.payload(order_events_pb2.OrderCompleted), "O-1").payload


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_TEXT, st.booleans()), max_size=8),
    st.lists(_TEXT, max_size=3),
)
def test_milestone_names_are_those_of_the_parsed_completion(
    milestones: list[tuple[str, bool]], actors: list[str]
) -> None:
    payload = order_events_pb2.OrderCompleted(
        order_id="O-1", business_type="broadband_install", voucher_id="AV-1"
    )
    for name, reached in milestones:
        m = payload.milestones.add(name=name)
        if reached:
            m.reached_at.seconds = 1_765_000_000
    for actor in actors:
        payload.history.add(to_state=order_pb2.ORDER_STATE_COMPLETED, actor=actor)
    text = kept(payload)
    row = event_row_of(text)
    assert milestone_names(text) == [m.name for m in completion_payload(row).milestones]
    assert milestone_names(text) == [name for name, _ in milestones]


def event_row_of(text: str) -> EventRow:
    return EventRow("e-1", "O-1", "order.completed", "intake", None, "", text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON, max_size=6))
def test_the_kept_payload_text_is_what_json_dumps_gave(fields: dict[str, Any]) -> None:
    assert _PAYLOAD_JSON(fields) == json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-62_135_596_800, 253_402_300_799) | st.sampled_from([0, -1, 1_765_000_000]),
    st.integers(0, 999_999_999) | st.sampled_from([0, 999, 1000, 999_999_999]),
)
def test_event_time_is_to_datetime_in_utc(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    expected = ts.ToDatetime(tzinfo=UTC)
    got = event_time(ts)
    assert got == expected
    assert got.tzinfo is expected.tzinfo
    assert got.isoformat() == expected.isoformat()


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-62_135_596_801, 0), (253_402_300_800, 0), (0, -1), (0, 1_000_000_000)],
)
def test_an_invalid_event_time_raises_as_to_datetime_does(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(ValueError):
        ts.ToDatetime(tzinfo=UTC)
    with pytest.raises(ValueError):
        event_time(ts)
