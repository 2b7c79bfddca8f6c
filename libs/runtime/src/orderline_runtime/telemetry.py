"""OpenTelemetry set-up and the helpers that keep one order in one trace.

Context crosses processes as W3C `traceparent` and `baggage`: in gRPC metadata (the
instrumentation interceptors), in NATS headers (the relay and the consumer) and, between a
state change and its publication, in the outbox row. The order id travels as baggage and a
span processor copies it onto every span as `orderline.order_id`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import Any

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderline_runtime.telemetry_names import DEVICE_ID, EVENT_TYPE, ORDER_ID

__all__ = ["DEVICE_ID", "EVENT_TYPE", "ORDER_ID"]

_provider: TracerProvider | None = None


class OrderIdSpanProcessor(SpanProcessor):
    """Stamps `orderline.order_id` from baggage on every span, automatic ones included."""

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        order_id = baggage.get_baggage(ORDER_ID, parent_context)
        if order_id:
            span.set_attribute(ORDER_ID, str(order_id))


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans as JSON lines to one file per process (no interleaving)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join([_compact_json(span_to_dict(s)) + "\n" for s in spans])
        with self._lock, open(self._path, "a", encoding="utf-8") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


# One encoder for every span: json.dumps with any argument but the object builds a new
# JSONEncoder per call (3 of the 18 µs a consumer span's line took).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode

# Attribute values the encoder writes as _jsonable would leave them.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent
    # Nearly every attribute is a str, int, float or bool, which _jsonable returns as it is:
    # then one dict() of the attributes instead of a comprehension calling it per value (a
    # quarter of a line's conversion).
    attributes = dict(span.attributes or {})
    for value in attributes.values():
        if type(value) not in _JSON_SCALARS:
            attributes = {k: _jsonable(v) for k, v in attributes.items()}
            break
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
        "attributes": attributes,
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return list(value) if isinstance(value, tuple | list) else str(value)


def setup_tracing(service_name: str, trace_dir: Path) -> TracerProvider:
    """Installs the global tracer provider: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else a
    JSON-lines file under trace_dir that `orderline trace` reads."""
    global _provider
    resource = Resource.create({"service.name": service_name, "service.namespace": "orderline"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(OrderIdSpanProcessor())
    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = JsonLinesSpanExporter(trace_dir / f"{service_name}-{os.getpid()}.jsonl")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.force_flush()
        _provider.shutdown()


@cache
def tracer(name: str = "orderline") -> trace.Tracer:
    # Built once per name: get_tracer makes a new Tracer (and scope) on every call, which
    # showed in the profile as a cost per span. One made before setup_tracing is a proxy that
    # follows the provider installed later.
    return trace.get_tracer(name)


def order_scope(order_id: str, device_id: str | None = None) -> _OrderScope:
    """Marks the current span and everything started inside (spans, outbox rows, outgoing calls)
    as work for this order."""
    return _OrderScope(order_id, device_id)


# order_scope and continued are entered once per span of a consumer or the relay: as classes
# rather than @contextmanager generators they cost about 1 us less each (no generator, no
# _GeneratorContextManager to build and drive).
class _OrderScope(AbstractContextManager[None]):
    __slots__ = ("_device_id", "_order_id", "_token")

    def __init__(self, order_id: str, device_id: str | None) -> None:
        self._order_id = order_id
        self._device_id = device_id

    def __enter__(self) -> None:
        span = trace.get_current_span()
        span.set_attribute(ORDER_ID, self._order_id)
        if self._device_id:
            span.set_attribute(DEVICE_ID, self._device_id)
        self._token = context.attach(baggage.set_baggage(ORDER_ID, self._order_id))

    def __exit__(self, *exc_info: object) -> None:
        context.detach(self._token)


def inject_current() -> dict[str, str]:
    """The current trace context as W3C headers, for an outbox row or a message."""
    carrier = _w3c_inject() if _w3c_propagation() else None
    if carrier is None:
        carrier = {}
        propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> context.Context:
    if _w3c_propagation():
        if not headers:
            return context.Context()  # what the default propagators make of no headers
        extracted = _w3c_extract(headers)
        if extracted is not None:
            return extracted
    return propagate.extract(dict(headers or {}))


# --- W3C trace context and baggage without the propagator machinery -----------------------
#
# Every span of a consumer, the relay and the outbox starts from `extract` or ends in
# `inject_current`. Through `propagate` that is the CompositePropagator, a getter building a
# list per header, a regular expression looked up in re's cache, one Context copied per
# baggage entry and the baggage propagator's limit checks: about 12 us per extract, a tenth
# of a consumer span. The headers we write ourselves have one shape, so for exactly that
# shape the context is built directly; anything else (an upper-case or future traceparent,
# a tracestate, baggage with spaces, escapes, properties or near a limit, a value that is
# not a string, another propagator configured) goes through `propagate` as before, so the
# result is always what the SDK's TraceContextTextMapPropagator + W3CBaggagePropagator make
# (the unit tests compare the two for any header). _SPAN_KEY and _BAGGAGE_KEY are private
# names of the API: the context entries get_current_span and get_baggage read.

# version 00 with nothing after the flags; lower-case hex only, as the SDK requires.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})").fullmatch
# Baggage entries `key=value` whose percent-decoding (unquote_plus) and stripping change
# nothing: the W3C key and value characters without `%`, `+` and `;` (properties), no
# whitespace around `,` or `=`, no empty entry. 4096 characters at most keeps every entry
# and the whole header within the propagator's limits (4096 per entry, 8192 in all).
_KEY = r"[\x21\x23\x24\x26\x27\x2a\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+"
_VALUE = r"[\x21\x23\x24\x26-\x2a\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_PLAIN_BAGGAGE = re.compile(rf"{_KEY}={_VALUE}(?:,{_KEY}={_VALUE})*").fullmatch
_MAX_PLAIN_BAGGAGE = 4096
_MAX_BAGGAGE_ENTRIES = 180
# What quote_plus leaves as it is (and so what inject may write without calling it).
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

_propagation_checked: list[Any] = [None, False]  # [global textmap, is it the default W3C one]


def _w3c_propagation() -> bool:
    """Whether the global propagator is the default one: W3C trace context, then baggage
    (OTEL_PROPAGATORS unset or `tracecontext,baggage`, nothing set by set_global_textmap)."""
    textmap = propagate.get_global_textmap()
    if textmap is not _propagation_checked[0]:
        inner = getattr(textmap, "_propagators", None)
        _propagation_checked[:] = [
            textmap,
            type(textmap) is CompositePropagator
            and inner is not None
            and [type(p) for p in inner] == [TraceContextTextMapPropagator, W3CBaggagePropagator],
        ]
    return bool(_propagation_checked[1])


def _w3c_extract(headers: Mapping[str, str]) -> context.Context | None:
    """The context of these headers, or None when they are not of the plain shape."""
    values: dict[str, object] = {}
    traceparent = headers.get("traceparent")
    if traceparent is not None:
        if type(traceparent) is not str or "tracestate" in headers:
            return None
        match = _TRACEPARENT(traceparent)
        if match is None:
            return None
        trace_id, span_id, flags = match.groups()
        if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
            return None
        values[_SPAN_KEY] = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=int(trace_id, 16),
                span_id=int(span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(int(flags, 16)),
            )
        )
    header = headers.get("baggage")
    if header is not None:
        if (
            type(header) is not str
            or len(header) > _MAX_PLAIN_BAGGAGE
            or header.count(",") >= _MAX_BAGGAGE_ENTRIES
            or _PLAIN_BAGGAGE(header) is None
        ):
            return None
        entries: dict[str, object] = {}
        for entry in header.split(","):
            name, _, value = entry.partition("=")
            entries[name] = value
        values[_BAGGAGE_KEY] = entries
    return context.Context(values)


def _w3c_inject() -> dict[str, str] | None:
    """The headers the default propagators write for the current context, or None when it
    carries something this does not write (a trace state, baggage needing escapes)."""
    current = context.get_current()
    carrier: dict[str, str] = {}
    span = current.get(_SPAN_KEY)
    if isinstance(span, trace.Span):
        span_context = span.get_span_context()
        if span_context != trace.INVALID_SPAN_CONTEXT:
            if span_context.trace_state:
                return None
            carrier["traceparent"] = (
                f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
                f"-{span_context.trace_flags:02x}"
            )
    entries = current.get(_BAGGAGE_KEY)
    if isinstance(entries, dict) and entries:
        if len(entries) > _MAX_BAGGAGE_ENTRIES:
            return None
        for name, value in entries.items():
            if not (
                type(name) is str and type(value) is str and _UNQUOTED(name) and _UNQUOTED(value)
            ):
                return None
        header = ",".join(f"{name}={value}" for name, value in entries.items())
        if len(header) > _MAX_PLAIN_BAGGAGE:
            return None
        carrier["baggage"] = header
    return carrier


def continued(headers: Mapping[str, str] | None) -> _Continued:
    """Makes the context carried by these W3C headers current, baggage included, so that the
    next span is a child of the remote one and the order id travels on with it.

    (`start_as_current_span(context=extract(...))` alone parents the span but drops the
    extracted baggage from the context it makes current.)"""
    return _Continued(headers)


class _Continued(AbstractContextManager[None]):
    __slots__ = ("_headers", "_token")

    def __init__(self, headers: Mapping[str, str] | None) -> None:
        self._headers = headers

    def __enter__(self) -> None:
        self._token = context.attach(extract(self._headers))

    def __exit__(self, *exc_info: object) -> None:
        context.detach(self._token)
