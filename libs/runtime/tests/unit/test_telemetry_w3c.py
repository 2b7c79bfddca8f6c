"""`extract` and `inject_current` build and write W3C trace context and baggage themselves for
the headers of the usual shape (issue #8): whatever the headers, the result must be what the
SDK's default propagators (TraceContextTextMapPropagator, then W3CBaggagePropagator) make."""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderline_runtime import telemetry
from orderline_runtime.telemetry import extract, inject_current

_SDK = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def _view(ctx: Mapping[str, object]) -> dict[str, object]:
    """A context as comparable values: spans by type and span context (NonRecordingSpan has
    no equality of its own), everything else as it is."""
    return {
        key: (type(value), value.get_span_context()) if isinstance(value, trace.Span) else value
        for key, value in ctx.items()
    }


def _sdk_extract(headers: Mapping[str, str] | None) -> dict[str, object]:
    return _view(_SDK.extract(dict(headers or {})))


# --- headers, valid and not ------------------------------------------------------------------
_HEX = "0123456789abcdef"
_hex = lambda n: st.text(_HEX, min_size=n, max_size=n)  # noqa: E731


@st.composite
def _traceparents(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["00", "00", "00", "01", "ff", "0g", "0"]))
    trace_id = draw(st.one_of(_hex(32), st.just("0" * 32), _hex(31)))
    span_id = draw(st.one_of(_hex(16), st.just("0" * 16), _hex(17)))
    flags = draw(st.one_of(st.sampled_from(["00", "01", "03", "ff"]), _hex(2)))
    value = f"{version}-{trace_id}-{span_id}-{flags}"
    value += draw(st.sampled_from(["", "", "", "-", "-00", "-what", " ", "\t", "\n", "x"]))
    if draw(st.booleans()):
        value = draw(st.sampled_from(["", " ", "\t"])) + value
    if draw(st.integers(0, 9)) == 0:
        value = value.upper()
    return value


# Mostly characters that need no escaping, else one that does (or may) somewhere in the word.
_PLAIN = string.ascii_letters + string.digits + "-._~"
_SPECIAL = [*"!#$%&'*+=;:/?@[]()<>\"\\ \t,é^`|", "%20", "%2C", "%2B", "%zz", "%e9"]
_plain_words = st.text(_PLAIN, max_size=8)
_words = st.one_of(
    _plain_words,
    _plain_words,
    _plain_words,
    st.builds(lambda a, c, b: a + c + b, _plain_words, st.sampled_from(_SPECIAL), _plain_words),
)


@st.composite
def _baggages(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.text(max_size=40))
    entries = draw(st.lists(st.tuples(_words, _words), max_size=6))
    separator = draw(st.sampled_from([",", ",", ",", ", ", " ,", ",,"]))
    equals = draw(st.sampled_from(["=", "=", "=", "= ", " ="]))
    return separator.join(f"{k}{equals}{v}" for k, v in entries)


_headers = st.fixed_dictionaries(
    {},
    optional={
        "traceparent": st.one_of(_traceparents(), st.text(max_size=60)),
        "baggage": _baggages(),
        "tracestate": st.sampled_from(["", "vendor=value", "a=1,b=2", "bad key=1"]),
        "Nats-Msg-Id": st.text(max_size=10),
        "Traceparent": _traceparents(),
    },
)

_RELAY_LIKE = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "baggage": "orderline.order_id=O-0000042",
    "Nats-Msg-Id": "ev-1",
}


@given(_headers)
@settings(max_examples=1000)
@example(_RELAY_LIKE)
@example({})
@example({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"})
@example({"baggage": "a=1,a=2,b=%20x%2Cy+z"})
@example({"baggage": "k=v;prop=1"})
@example({"baggage": "k=%20v"})
@example({"baggage": "k=a+b"})
@example({"baggage": "k+=v"})
@example({"baggage": "orderline.order_id=O-1,other=2"})
def test_extract_gives_the_context_of_the_default_propagators(headers: dict[str, str]) -> None:
    assert _view(extract(headers)) == _sdk_extract(headers)


def test_extract_of_no_headers_is_an_empty_context() -> None:
    assert extract(None) == context.Context() == _SDK.extract({})
    assert extract({}) == context.Context()


def test_baggage_near_the_limits_is_left_to_the_propagator() -> None:
    many = ",".join(f"k{i}=v" for i in range(200))
    long_value = {"baggage": "k=" + "v" * 5000}
    wide = {"baggage": ",".join(f"k{i}=" + "v" * 100 for i in range(60))}  # 6 kB in all
    for headers in ({"baggage": many}, long_value, wide):
        assert _view(extract(headers)) == _sdk_extract(headers)
    assert len(baggage.get_all(extract({"baggage": many}))) == 180


def test_extract_is_done_here_for_the_headers_the_relay_writes() -> None:
    # Not a fallback to the propagators: otherwise this module would gain nothing.
    extracted = telemetry._w3c_extract(_RELAY_LIKE)
    assert extracted is not None
    assert _view(extracted) == _sdk_extract(_RELAY_LIKE)
    parent = trace.get_current_span(extracted).get_span_context()
    assert parent.is_remote and parent.trace_flags.sampled
    assert baggage.get_baggage("orderline.order_id", extracted) == "O-0000042"


def test_headers_of_other_types_are_left_to_the_propagator() -> None:
    headers: Any = {"traceparent": [_RELAY_LIKE["traceparent"]], "baggage": ["a=1", "b=2"]}
    assert telemetry._w3c_extract(headers) is None
    assert _view(extract(headers)) == _sdk_extract(headers)


# --- inject ----------------------------------------------------------------------------------
_span_contexts = st.builds(
    SpanContext,
    trace_id=st.one_of(st.integers(1, 2**128 - 1), st.just(0)),
    span_id=st.one_of(st.integers(1, 2**64 - 1), st.just(0)),
    is_remote=st.booleans(),
    trace_flags=st.sampled_from([TraceFlags(0), TraceFlags(1), TraceFlags(3)]),
    trace_state=st.sampled_from([None, TraceState([("vendor", "value")])]),
)
_baggage_values = st.one_of(_words, st.text(max_size=8), st.integers(), st.just(None))
_baggage_entries = st.dictionaries(st.one_of(_words, st.text(max_size=8)), _baggage_values)


@contextmanager
def _current(span_context: SpanContext | None, entries: dict[str, object]) -> Iterator[None]:
    ctx = context.Context()
    if span_context is not None:
        ctx = trace.set_span_in_context(NonRecordingSpan(span_context), ctx)
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def _sdk_inject() -> list[tuple[str, str]]:
    carrier: dict[str, str] = {}
    _SDK.inject(carrier)
    return list(carrier.items())


@given(st.one_of(st.none(), _span_contexts), _baggage_entries)
@settings(max_examples=1000)
@example(
    SpanContext(0xAF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)), {}
)
@example(None, {"orderline.order_id": "O-1"})
@example(None, {"k": "a b", "é": "x", "": ""})
@example(None, {"k": "a+b"})
def test_injected_headers_are_those_of_the_default_propagators(
    span_context: SpanContext | None, entries: dict[str, object]
) -> None:
    with _current(span_context, entries):
        assert list(inject_current().items()) == _sdk_inject()


def test_much_baggage_is_left_to_the_propagator() -> None:
    for entries in (
        {f"k{i}": "v" for i in range(200)},
        {f"k{i}": "v" * 100 for i in range(60)},
        {"k": "v" * 5000},
    ):
        with _current(None, dict(entries)):
            assert list(inject_current().items()) == _sdk_inject()


def test_the_headers_of_an_order_are_written_here() -> None:
    span_context = SpanContext(
        0xAF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)
    )
    with _current(span_context, {"orderline.order_id": "O-0000042"}):
        assert telemetry._w3c_inject() == {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "baggage": "orderline.order_id=O-0000042",
        }


# --- another propagator configured -------------------------------------------------------------
@pytest.fixture
def trace_context_only() -> Iterator[None]:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        yield
    finally:
        propagate.set_global_textmap(before)


@pytest.mark.usefixtures("trace_context_only")
def test_another_configured_propagator_is_used_as_it_is() -> None:
    # This one ignores baggage: extract and inject must too.
    extracted = extract(_RELAY_LIKE)
    assert baggage.get_all(extracted) == {}
    assert trace.get_current_span(extracted).get_span_context().span_id == 0xB7AD6B7169203331
    token = context.attach(extracted)
    try:
        assert set(inject_current()) == {"traceparent"}
    finally:
        context.detach(token)
