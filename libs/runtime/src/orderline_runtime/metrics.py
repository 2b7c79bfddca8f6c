"""Metric instruments (names in docs/telemetry.md); no-ops until a meter provider is set."""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("orderline")

events_handled = _meter.create_counter(
    "orderline.events.handled", description="events a consumer handled, by outcome"
)
events_redelivered = _meter.create_counter(
    "orderline.events.redelivered", description="deliveries after the first"
)
events_dead_lettered = _meter.create_counter(
    "orderline.events.dead_lettered", description="events sent to the dead-letter stream"
)
outbox_published = _meter.create_counter(
    "orderline.outbox.published", description="outbox rows published by the relay"
)
