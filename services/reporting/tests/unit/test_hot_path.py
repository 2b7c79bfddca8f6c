"""The event path's cheaper conversions give exactly what the ones they replaced gave (issue
#8): each test compares the new function with the old way, on the report fixture's events or
on generated values."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline_reporting.adapters.repository import fact_row
from orderline_reporting.app.projector import event_time
from orderline_reporting.domain import digest as dg
from orderline_reporting.domain import facts as F
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.envelope import ReceivedEvent

from .report_fixture import events

OE = order_events_pb2


def known_facts() -> list[F.Fact]:
    found = [
        F.extract(
            e.event_type, e.event_id, e.at, e.payload, order_id=e.order_id, device_id=e.device_id
        )
        for e in events()
    ]
    return [f for f in found if f is not None]


def test_a_fact_row_is_asdict_of_the_fact() -> None:
    scored = F.Fact("ev-x", F.FEEDBACK, datetime(2026, 5, 9, tzinfo=UTC), "A", value=4)
    for fact in [*known_facts(), scored]:
        row = fact_row(fact)
        assert list(row.items()) == list(asdict(fact).items())  # same keys in the same order
        assert row is not vars(fact)  # a copy: nothing done to the row reaches the fact


_VALUES = st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats())


@given(st.lists(_VALUES))
def test_a_rows_canonical_text_is_what_json_dumps_gave(fields: list[object]) -> None:
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert dg._canonical(fields) == expected


def test_canonical_text_of_rows_as_hashed() -> None:
    fields = ["orders", "订单-1", 'a "b" \\ \n \x00 é', 2**300, -1, None, "", True]
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert dg._canonical(fields) == expected
    assert dg._canonical(fields[:-1]) == expected.removesuffix(",true]") + "]"


def _received(time: Timestamp | None) -> ReceivedEvent:
    envelope = envelope_pb2.Envelope(id="ev-1", type="order.created", producer="intake")
    if time is not None:
        envelope.time.CopyFrom(time)
    return ReceivedEvent(envelope, "orderline.order.created")


@given(st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999_999))
def test_event_time_is_what_to_datetime_gave(seconds: int, nanos: int) -> None:
    time = Timestamp(seconds=seconds, nanos=nanos)
    at = event_time(_received(time))
    expected = time.ToDatetime(tzinfo=UTC)
    assert (at, at.tzinfo, at.isoformat()) == (expected, expected.tzinfo, expected.isoformat())


def test_event_time_without_a_time_or_with_an_invalid_one() -> None:
    assert event_time(_received(None)) == datetime.fromtimestamp(0, UTC)
    assert event_time(_received(None)).tzinfo is UTC
    for invalid in (Timestamp(seconds=1, nanos=-1), Timestamp(seconds=2**40)):
        with pytest.raises(ValueError):
            invalid.ToDatetime(tzinfo=UTC)
        with pytest.raises(ValueError):
            event_time(_received(invalid))


def _extract_as_before(
    event_type: str, event_id: str, at: datetime, payload: Any, order_id: str, device_id: str
) -> F.Fact | None:
    """facts.extract before issue #8: a Fact of the common fields, then `replace`."""
    if event_type in F.MILESTONE_EVENTS:
        kind, fn = F.MILESTONE, F._milestone(event_type)
    elif event_type in F._EXTRACTORS:
        kind, fn = F._EXTRACTORS[event_type]
    elif event_type in F.FUTURE_KINDS:
        kind, fn = F.FUTURE_KINDS[event_type], F._generic
    else:
        return None
    fact = F.Fact(
        event_id=event_id,
        kind=kind,
        at=at,
        order_id=F._text(payload, "order_id") or order_id,
        device_id=F._text(payload, "device_id") or device_id,
        **F._common(payload),
    )
    changes: dict[str, Any] = {k: v or "" for k, v in fn(payload).items()}
    return replace(fact, **changes)


def _filled(cls: type[Message]) -> Message:
    """A payload with every scalar field set (an enum to its last value)."""
    payload = cls()
    for field in cls.DESCRIPTOR.fields:
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            continue
        if field.type == FieldDescriptor.TYPE_BYTES:
            value: Any = b"bytes-1"
        elif field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            value = f"{field.name}-1"
        elif field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
            value = field.enum_type.values[-1].number
        elif field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            value = True
        else:
            value = 4
        if field.is_repeated:
            getattr(payload, field.name).extend([value, value])
        else:
            setattr(payload, field.name, value)
    return payload


def test_extract_gives_the_fact_it_gave() -> None:
    at = datetime(2026, 5, 9, 1, 2, 3, 456789, tzinfo=UTC)
    cases = [(e.event_type, e.payload, e.order_id, e.device_id) for e in events()]
    for spec in catalogue().consumed_by("reporting"):
        cases.append((spec.event_type, spec.payload_type(), "env-order", "env-device"))
        cases.append((spec.event_type, _filled(spec.payload_type), "env-order", "env-device"))
    for event_type in F.FUTURE_KINDS:  # not (yet) in the catalogue: read generically
        cases.append((event_type, OE.OrderCreated(order_id="o"), "", ""))
    for n, (event_type, payload, order_id, device_id) in enumerate(cases):
        args = (event_type, f"ev-{n}", at, payload, order_id, device_id)
        expected = _extract_as_before(*args)
        assert F.extract(*args[:4], order_id=order_id, device_id=device_id) == expected
    assert sum(F.kind_of(c[0]) is not None for c in cases) > 60
