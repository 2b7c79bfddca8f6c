"""Span files that `orderline trace` reads, and the helpers that carry one order's context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link

from orderline_runtime.telemetry import (
    ORDER_ID,
    JsonLinesSpanExporter,
    OrderIdSpanProcessor,
    continued,
    extract,
    inject_current,
    order_scope,
)


def test_json_lines_exporter_writes_one_parseable_line_per_span(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "intake-1.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "intake"}))
    provider.add_span_processor(OrderIdSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("first") as first:
        pass
    with (
        tracer.start_as_current_span("CreateOrder", links=[Link(first.get_span_context())]),
        order_scope("O-7"),
        tracer.start_as_current_span("validate", attributes={"fields": ("a", "b")}),
    ):
        pass
    provider.shutdown()

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert set(by_name) == {"first", "CreateOrder", "validate"}
    parent, child = by_name["CreateOrder"], by_name["validate"]
    for line in lines:
        assert line["service"] == "intake"
        assert len(line["trace_id"]) == 32 and int(line["trace_id"], 16)
        assert len(line["span_id"]) == 16 and int(line["span_id"], 16)
        assert line["end_ns"] >= line["start_ns"]
    assert parent["parent_span_id"] is None
    assert child["parent_span_id"] == parent["span_id"]
    assert child["trace_id"] == parent["trace_id"]
    assert child["attributes"][ORDER_ID] == "O-7"
    assert parent["attributes"][ORDER_ID] == "O-7"
    assert child["attributes"]["fields"] == ["a", "b"]
    assert parent["links"] == [
        {"trace_id": by_name["first"]["trace_id"], "span_id": by_name["first"]["span_id"]}
    ]


def test_headers_carry_trace_and_order_and_continue_it_elsewhere() -> None:
    provider = TracerProvider()
    provider.add_span_processor(OrderIdSpanProcessor())
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("worker") as span, order_scope("O-8"):
        headers = inject_current()
    assert headers["traceparent"].split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    assert "orderline.order_id=O-8" in headers["baggage"]

    # Later, e.g. in another process: the work resumes in the same trace and order.
    assert baggage.get_baggage(ORDER_ID) is None
    with continued(headers), tracer.start_as_current_span("resumed") as resumed:
        assert baggage.get_baggage(ORDER_ID) == "O-8"
        assert inject_current()["traceparent"].split("-")[1] == headers["traceparent"].split("-")[1]
    assert resumed.parent is not None
    assert resumed.parent.span_id == span.get_span_context().span_id
    assert (resumed.attributes or {})[ORDER_ID] == "O-8"
    assert baggage.get_baggage(ORDER_ID) is None
    assert trace.get_current_span(extract(None)) is trace.INVALID_SPAN
    assert context.get_current() is not None


def test_setup_tracing_writes_spans_of_the_process_to_the_trace_dir(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from orderline_runtime.telemetry import setup_tracing, shutdown_tracing, tracer, "
        "order_scope\n"
        "setup_tracing('archive', Path(sys.argv[1]))\n"
        "with tracer().start_as_current_span('seal dossier'), order_scope('O-9'):\n"
        "    pass\n"
        "shutdown_tracing()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, timeout=60)
    files = list(tmp_path.glob("archive-*.jsonl"))
    assert len(files) == 1
    (line,) = [json.loads(x) for x in files[0].read_text(encoding="utf-8").splitlines()]
    assert line["service"] == "archive"
    assert line["name"] == "seal dossier"
    assert line["attributes"][ORDER_ID] == "O-9"


def test_prometheus_names_of_our_metrics_follow_the_exporters_rules() -> None:
    from orderline_runtime import telemetry_names as names

    assert names.prometheus_counter(names.EVENTS_HANDLED) == "orderline_events_handled_total"
    assert names.prometheus_histogram(names.OUTBOX_LAG) == "orderline_outbox_lag_seconds"
    assert names.handle_span("archive", "order.completed") == "archive handle order.completed"
