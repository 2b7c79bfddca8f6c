"""The kept payload's fields (app/payload_fields.py) are exactly what MessageToDict gave, for
every event payload type of the catalogue: the same JSON text once encoded as the archive keeps
it, or the same error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderline.events.v1 import order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_archive.app import payload_fields as planned
from orderline_archive.app.payload_fields import payload_fields
from orderline_archive.app.sealing import _PAYLOAD_JSON, event_row
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.envelope import build_envelope, parse_envelope

PAYLOAD_TYPES = sorted(
    {spec.payload_type for spec in catalogue().events}, key=lambda t: t.DESCRIPTOR.full_name
)


def reference(payload: Message) -> Any:
    """What the archive kept before: the protobuf library's general conversion."""
    return json_format.MessageToDict(payload, preserving_proto_field_name=True)


def assert_same(payload: Message) -> None:
    try:
        expected = _PAYLOAD_JSON(reference(payload))
    except Exception as exc:
        with pytest.raises(type(exc)):
            payload_fields(payload)
        return
    assert _PAYLOAD_JSON(payload_fields(payload)) == expected


_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return st.binary(max_size=8) if field.type == FieldDescriptor.TYPE_BYTES else st.text()
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if cpp in _INT_RANGES:
        low, high = _INT_RANGES[cpp]
        return st.integers(low, high) | st.sampled_from([0, 1, high])
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        # A number the contract does not name (an open enum keeps it): MessageToDict's int.
        return st.sampled_from(numbers) | st.integers(-3, 40)
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return st.floats(width=32 if cpp == FieldDescriptor.CPPTYPE_FLOAT else 64)
    raise AssertionError(f"no strategy for {field.full_name}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


@st.composite
def messages(draw: st.DrawFn, desc: Descriptor, depth: int = 0) -> Any:
    """A message of this type with any of its fields set to any value (nested up to 3)."""
    cls = _class_of(desc)
    message = cls()
    if desc.full_name == "google.protobuf.Timestamp":
        message.seconds = draw(
            st.integers(-62_135_596_800, 253_402_300_799) | st.sampled_from([0, 1_765_000_000])
        )
        message.nanos = draw(st.integers(0, 999_999_999) | st.sampled_from([0, 1000, 1_000_000]))
        return message
    for field in desc.fields:
        if not draw(st.booleans()):
            continue
        fill(draw, message, field, depth)
    return message


def fill(draw: st.DrawFn, message: Any, field: FieldDescriptor, depth: int) -> None:
    container = getattr(message, field.name)
    if _is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        for _ in range(draw(st.integers(0, 3))):
            key = draw(_scalar(key_field))
            if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                container[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
            else:
                container[key] = draw(_scalar(value_field))
        return
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        if depth >= 3:
            return
        if field.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                container.add().CopyFrom(draw(messages(field.message_type, depth + 1)))
        else:
            # Set even when it is empty: a message field has presence ({} in the JSON).
            container.SetInParent()
            container.CopyFrom(draw(messages(field.message_type, depth + 1)))
        return
    if field.is_repeated:
        container.extend(draw(st.lists(_scalar(field), max_size=3)))
    else:
        setattr(message, field.name, draw(_scalar(field)))


def _class_of(desc: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


@pytest.mark.parametrize("payload_type", PAYLOAD_TYPES, ids=lambda t: t.DESCRIPTOR.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_payload_of_the_catalogue_keeps_what_message_to_dict_gave(
    payload_type: type[Message], data: st.DataObject
) -> None:
    assert_same(data.draw(messages(payload_type.DESCRIPTOR)))


def full(desc: Descriptor, depth: int = 0) -> Any:
    """Every field set, to a value other than its default (two entries of every repeated
    field and map, nested messages full too)."""
    message = _class_of(desc)()
    if desc.full_name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = 1_765_000_000, 123_000_000
        return message
    for field in desc.fields:
        container = getattr(message, field.name)
        if _is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            for i in (1, 2):
                key = _example(key_field, i)
                if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                    container[key].CopyFrom(full(value_field.message_type, depth + 1))
                else:
                    container[key] = _example(value_field, i)
        elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in (1, 2):
                    container.add().CopyFrom(full(field.message_type, depth + 1))
            else:
                container.CopyFrom(full(field.message_type, depth + 1))
                container.SetInParent()
        elif field.is_repeated:
            container.extend([_example(field, 1), _example(field, 2)])
        elif field.containing_oneof is None or not message.WhichOneof(field.containing_oneof.name):
            setattr(message, field.name, _example(field, 1))
    return message


def _example(field: FieldDescriptor, i: int) -> Any:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return bytes([0xFF, i, 0x00])
        return f"{field.name}-{i}-é\u2028"
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return True
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return field.enum_type.values[min(i, len(field.enum_type.values) - 1)].number
    if cpp in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return 2**40 + i
    return 7 + i


@pytest.mark.parametrize("payload_type", PAYLOAD_TYPES, ids=lambda t: t.DESCRIPTOR.name)
def test_every_field_set_keeps_what_message_to_dict_gave(payload_type: type[Message]) -> None:
    payload = full(payload_type.DESCRIPTOR)
    assert set(reference(payload)) == {f.name for f in payload_type.DESCRIPTOR.fields} - {
        f.name
        for f in payload_type.DESCRIPTOR.fields
        if f.containing_oneof is not None and not payload.HasField(f.name)
    }
    assert _PAYLOAD_JSON(payload_fields(payload)) == _PAYLOAD_JSON(reference(payload))


def test_every_payload_type_of_the_catalogue_is_planned() -> None:
    # The fallback would keep the same text, but the catalogue's types should not need it.
    unplanned = [
        t.DESCRIPTOR.full_name for t in PAYLOAD_TYPES if planned._plan_of(t.DESCRIPTOR) is None
    ]
    assert unplanned == []


def test_what_the_plan_does_not_cover_goes_to_message_to_dict() -> None:
    # An order state the contract does not name is kept as its number, as MessageToDict does.
    change = order_events_pb2.OrderStateChanged(order_id="O-1", to_state=99)  # type: ignore[arg-type]
    assert payload_fields(change)["to_state"] == 99
    assert_same(change)
    # A Timestamp out of range fails as it did.
    completed = order_events_pb2.OrderCompleted(order_id="O-1")
    completed.created_at.seconds = 253_402_300_800
    with pytest.raises(json_format.SerializeToJsonError):
        reference(completed)
    with pytest.raises(json_format.SerializeToJsonError):
        payload_fields(completed)
    # Well-known types other than Timestamp (their own JSON forms).
    assert payload_fields(Timestamp(seconds=1)) == reference(Timestamp(seconds=1))


def test_event_row_keeps_the_planned_fields() -> None:
    payload = full(order_events_pb2.OrderCompleted.DESCRIPTOR)
    env = build_envelope("order.completed", payload, producer="intake", order_id="O-1")
    received = parse_envelope(env.SerializeToString(), "orderline.order.completed")
    row = event_row(received, received.payload(order_events_pb2.OrderCompleted), "O-1")
    assert row.payload == json.dumps(
        reference(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert json.loads(row.payload)["history"][0]["to_state"] == order_pb2.OrderState.Name(
        payload.history[0].to_state
    )
