"""An event's payload as the fields the archive keeps: exactly what
`json_format.MessageToDict(payload, preserving_proto_field_name=True)` returns, cheaper.

MessageToDict was the largest cost of keeping an event (docs/performance.md): for every field
of every message it asks the descriptor again which kind of field it is, whether it is a map,
a wrapper or a well-known type. Those answers do not change for a message type, so they are
worked out once per type here (a plan: each field's name and conversion) and every payload
only walks its set fields (`ListFields`, as MessageToDict does).

The plan covers the kinds of field the event catalogue uses: strings, bytes, bools, integers,
enums with known values, nested messages, repeated fields, maps and `Timestamp`. Anything else
(floats, other well-known types, extensions, an enum value the contract does not name, enum
values with their own JSON names) goes to MessageToDict, for that whole payload: the same
result, or the same error, by construction. tests/unit/test_payload_fields.py compares the two
for every payload type of the catalogue.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    EnumValueDescriptor,
    FieldDescriptor,
)
from google.protobuf.message import Message

_Convert = Callable[[Any], Any]

# MessageToDict's own conversions (json_format._WKTJSONMETHODS and the wrappers) for these.
_TIMESTAMP = "google.protobuf.Timestamp"
_JSON_NAME = "pb.enumvalue.json"
_INT64 = frozenset(
    {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64},
)
_INT32 = frozenset(
    {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_UINT32},
)


class _Unplanned(Exception):
    """A value the plan does not convert: the payload goes to MessageToDict."""


def payload_fields(payload: Message) -> Any:
    """MessageToDict(payload, preserving_proto_field_name=True), by the payload type's plan."""
    convert = _plan_of(cast(Descriptor, payload.DESCRIPTOR))  # the stubs' union of both kinds
    if convert is not None:
        try:
            return convert(payload)
        except Exception:
            # _Unplanned, or a value that does not convert (a Timestamp out of range): the
            # general conversion gives its result or raises its own error, as it always did.
            pass
    return json_format.MessageToDict(payload, preserving_proto_field_name=True)


# A message type's conversion, or None when it has a field the plan does not cover.
_PLANS: dict[Descriptor, _Convert | None] = {}


def _plan_of(desc: Descriptor) -> _Convert | None:
    try:
        return _PLANS[desc]
    except KeyError:
        pass
    # Placed first: a message type that contains itself (directly or not) finds its entry
    # while its plan is made; the entry is the real plan by the time anything is converted.
    fields: dict[FieldDescriptor, tuple[str, _Convert]] = {}

    def convert(message: Message) -> dict[str, Any]:
        out = {}
        for field, value in message.ListFields():
            try:
                name, each = fields[field]
            except KeyError:  # an extension: not of the plan
                raise _Unplanned from None
            out[name] = each(value)
        return out

    _PLANS[desc] = convert
    plan = _message_plan(desc, fields, convert)
    _PLANS[desc] = plan
    return plan


def _message_plan(
    desc: Descriptor,
    fields: dict[FieldDescriptor, tuple[str, _Convert]],
    convert: _Convert,
) -> _Convert | None:
    if desc.full_name == _TIMESTAMP:
        return _timestamp
    if desc.full_name.startswith("google.protobuf.") or desc.extension_ranges:
        return None  # other well-known types (their own JSON forms); extensions
    for field in desc.fields:
        each = _field_plan(field)
        if each is None:
            return None
        fields[field] = (field.name, each)
    return convert


def _field_plan(field: FieldDescriptor) -> _Convert | None:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        of_value = _value_plan(value)
        if of_value is None:
            return None
        if key.cpp_type == FieldDescriptor.CPPTYPE_BOOL:

            def bool_map(values: Any, of_value: _Convert = of_value) -> dict[str, Any]:
                return {("true" if k else "false"): of_value(v) for k, v in values.items()}

            return bool_map

        def map_(values: Any, of_value: _Convert = of_value) -> dict[str, Any]:
            return {str(k): of_value(v) for k, v in values.items()}

        return map_
    each = _value_plan(field)
    if each is None or not field.is_repeated:
        return each
    if each is _same:
        return list

    def repeated(values: Any, each: _Convert = each) -> list[Any]:
        return [each(v) for v in values]

    return repeated


def _value_plan(field: FieldDescriptor) -> _Convert | None:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        assert field.message_type is not None  # a message field names its type
        return _plan_of(field.message_type)
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        assert field.enum_type is not None
        return _enum_plan(field.enum_type)
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return _base64 if field.type == FieldDescriptor.TYPE_BYTES else _same
    if cpp == FieldDescriptor.CPPTYPE_BOOL or cpp in _INT32:
        return _same  # MessageToDict's bool(value) of a bool, the int itself
    if cpp in _INT64:
        return str
    return None  # floats: infinities, NaN and the shortest float of a float are its own


def _enum_plan(enum: EnumDescriptor) -> _Convert | None:
    if enum.full_name == "google.protobuf.NullValue":
        return None
    if any(_json_named(value) for value in enum.values):
        return None  # a JSON name of its own: json_format's enum value option
    # The name MessageToDict looks up (values_by_number: for aliases, the one it gives).
    names = {number: value.name for number, value in enum.values_by_number.items()}

    def enum_name(number: int, names: dict[int, str] = names) -> str:
        try:
            return names[number]
        except KeyError:  # a number the contract does not name: an int or an error
            raise _Unplanned from None

    return enum_name


def _json_named(value: EnumValueDescriptor) -> bool:
    # json_format gives an enum value's `pb.enumvalue.json` option instead of its name; our
    # contracts' own options (tmf_name) change nothing.
    if not value.has_options:
        return False
    return any(f.full_name == _JSON_NAME for f, _ in value.GetOptions().ListFields())


def _same(value: Any) -> Any:
    return value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _timestamp(ts: Any) -> str:
    text: str = ts.ToJsonString()
    return text
