"""The JSON lines `orderline trace` reads are the same, byte for byte, as before the exporter's
conversion was made cheaper (issue #8); and the scopes restore the context however they end."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags

from orderline_runtime.telemetry import (
    ORDER_ID,
    OrderIdSpanProcessor,
    _compact_json,
    continued,
    inject_current,
    order_scope,
    span_to_dict,
)


# --- the conversion as it was, the reference ---------------------------------------------------
def _reference_span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _reference_jsonable(v) for k, v in (span.attributes or {}).items()},
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


def _reference_jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return list(value) if isinstance(value, tuple | list) else str(value)


def _reference_line(span: ReadableSpan) -> str:
    return json.JSONEncoder(separators=(",", ":")).encode(_reference_span_to_dict(span)) + "\n"


def _line(span: ReadableSpan) -> str:
    return _compact_json(span_to_dict(span)) + "\n"


# --- spans as the SDK makes them ------------------------------------------------------------------
class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


_keep = _Keep()
_provider = TracerProvider(resource=Resource.create({"service.name": "reporting"}))
_provider.add_span_processor(OrderIdSpanProcessor())
_provider.add_span_processor(SimpleSpanProcessor(_keep))
_tracer = _provider.get_tracer("test")

_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
_values = st.one_of(
    _scalars,
    _scalars,
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(), max_size=3).map(tuple),
    st.lists(st.floats(), max_size=3),
    st.binary(max_size=6),
    st.dictionaries(st.text(min_size=1, max_size=4), st.integers(), max_size=2),
    st.lists(st.binary(max_size=3), min_size=1, max_size=2),
)
_attributes = st.dictionaries(st.text(min_size=1, max_size=20), _values, max_size=8)
_span_context = st.builds(
    SpanContext,
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    is_remote=st.booleans(),
    trace_flags=st.just(TraceFlags(1)),
)


@st.composite
def _span_arguments(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "parent": draw(st.one_of(st.none(), _span_context)),
        "order_id": draw(st.one_of(st.none(), st.text(min_size=1, max_size=10))),
        "name": draw(st.text(max_size=30)),
        "kind": draw(st.sampled_from(SpanKind)),
        "attributes": draw(_attributes),
        "links": [Link(c) for c in draw(st.lists(_span_context, max_size=2))],
        "set_later": draw(_attributes),
        "status": draw(st.sampled_from([None, StatusCode.OK, StatusCode.ERROR])),
    }


def _span(
    parent: SpanContext | None,
    order_id: str | None,
    set_later: dict[str, Any],
    status: StatusCode | None,
    **arguments: Any,
) -> ReadableSpan:
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
    if order_id:
        ctx = baggage.set_baggage(ORDER_ID, order_id, ctx)
    _keep.spans.clear()
    span = _tracer.start_span(context=ctx, **arguments)
    for key, value in set_later.items():
        span.set_attribute(key, value)
    if status is not None:
        span.set_status(status, "failed" if status is StatusCode.ERROR else None)
    span.end()
    (finished,) = _keep.spans
    return finished


@given(_span_arguments())
@settings(max_examples=500)
def test_a_span_makes_the_line_it_made_before(arguments: dict[str, Any]) -> None:
    span = _span(**arguments)
    try:
        expected = _reference_line(span)
    except (TypeError, ValueError) as exc:  # bytes in a list: the old encoder failed too
        with pytest.raises(type(exc)):
            _line(span)
        return
    assert _line(span) == expected


@given(st.dictionaries(st.text(min_size=1, max_size=10), _scalars, max_size=8))
@example({"messaging.message.delivery_count": 1, "f": math.inf, "t": True, "s": 'é\n"'})
def test_plain_attributes_are_written_as_they_are(attributes: dict[str, Any]) -> None:
    _keep.spans.clear()
    with _tracer.start_as_current_span("handle", attributes=attributes), order_scope("O-1"):
        pass
    (span,) = _keep.spans
    assert _line(span) == _reference_line(span)
    if not any(isinstance(v, float) and not math.isfinite(v) for v in attributes.values()):
        assert json.loads(_line(span))["attributes"] == {**attributes, ORDER_ID: "O-1"}


# --- scopes ------------------------------------------------------------------------------------
def test_scopes_restore_the_context_when_the_work_fails() -> None:
    _keep.spans.clear()
    before = context.get_current()
    with _tracer.start_as_current_span("worker"), order_scope("O-5", "D-1") as entered:
        assert entered is None
        headers = inject_current()
    with pytest.raises(RuntimeError), continued(headers), order_scope("O-6"):
        assert baggage.get_baggage(ORDER_ID) == "O-6"
        raise RuntimeError("handler failed")
    assert context.get_current() == before
    (worker,) = _keep.spans
    assert dict(worker.attributes or {}) == {ORDER_ID: "O-5", "orderline.device_id": "D-1"}
