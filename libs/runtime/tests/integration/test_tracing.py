"""One order is one trace: the span that wrote an outbox row, the relay's publish span and the
consumer's handle span form a parent-child chain, and every span carries the order id."""

from __future__ import annotations

import asyncio
from typing import Any

from _runtime_support import Schema, count_rows, session_units, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orderline.events.v1 import order_events_pb2
from orderline_runtime.database import Database
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.consumer import EventConsumer, Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.relay import OutboxRelay
from orderline_runtime.telemetry import ORDER_ID, order_scope, tracer


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


async def test_outbox_relay_and_consumer_spans_form_one_trace_of_the_order(
    db: Database, bus: EventBus, schema: Schema, span_exporter: InMemorySpanExporter
) -> None:
    outbox = Outbox("intake", schema.outbox)
    relay = OutboxRelay(db, outbox, bus)

    async def on_approved(
        uow: Any, event: ReceivedEvent, payload: order_events_pb2.OrderApproved
    ) -> None:
        # Work the handler does: its spans inherit the order from the consumer's scope.
        with tracer("provisioning").start_as_current_span("create job"):
            await asyncio.sleep(0)

    consumer = EventConsumer(
        service="provisioning",
        stream=catalogue().for_payload(order_events_pb2.OrderApproved).stream,
        handlers=[Handler(order_events_pb2.OrderApproved, on_approved)],
        unit_of_work=session_units(db, Outbox("provisioning", schema.outbox)),
        inbox=schema.inbox,
        bus=bus,
    )
    stop = asyncio.Event()
    consuming = asyncio.create_task(consumer.run(stop))
    try:
        with trace.get_tracer("intake").start_as_current_span("CreateOrder"), order_scope("O-42"):
            async with session_units(db, outbox)() as uow:
                uow.emit(order_events_pb2.OrderApproved(order_id="O-42"))
            # The order id reaches spans started later in the scope, not only the current one.
            with trace.get_tracer("intake").start_as_current_span("review"):
                pass
        assert await relay.relay_once() == 1

        async def handled() -> bool:
            return await count_rows(db, schema.inbox) == 1

        await wait_until(handled, within=10, what="the consumer to handle the event")
    finally:
        stop.set()
        await asyncio.wait_for(consuming, timeout=10)

    spans = list(span_exporter.get_finished_spans())
    writer = one(spans, "CreateOrder")
    review = one(spans, "review")
    publish = one(spans, "publish order.approved")
    handle = one(spans, "provisioning handle order.approved")
    job = one(spans, "create job")

    assert publish.kind == SpanKind.PRODUCER
    assert handle.kind == SpanKind.CONSUMER
    assert publish.parent is not None and publish.parent.span_id == writer.context.span_id
    assert handle.parent is not None and handle.parent.span_id == publish.context.span_id
    assert job.parent is not None and job.parent.span_id == handle.context.span_id
    chain = [writer, review, publish, handle, job]
    assert {s.context.trace_id for s in chain} == {writer.context.trace_id}
    for span in chain:
        assert (span.attributes or {}).get(ORDER_ID) == "O-42", span.name
