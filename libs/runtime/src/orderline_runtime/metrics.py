"""Metric instruments; no-ops until `setup_metrics` installs a meter provider."""

from __future__ import annotations

from opentelemetry import metrics

from orderline_runtime import telemetry_names as names

_meter = metrics.get_meter("orderline")

events_handled = _meter.create_counter(
    names.EVENTS_HANDLED, description="events a consumer handled, by outcome"
)
events_redelivered = _meter.create_counter(
    names.EVENTS_REDELIVERED, description="deliveries after the first"
)
events_dead_lettered = _meter.create_counter(
    names.EVENTS_DEAD_LETTERED, description="events sent to the dead-letter stream"
)
outbox_published = _meter.create_counter(
    names.OUTBOX_PUBLISHED, description="outbox rows published by the relay"
)
outbox_lag = _meter.create_histogram(
    names.OUTBOX_LAG,
    unit="s",
    description="time from an event's commit to its publication",
)
stage_duration = _meter.create_histogram(
    names.STAGE_DURATION,
    unit="s",
    description="time one stage of an order's work took, by service and stage",
)


def setup_metrics(service_name: str, host: str, port: int) -> None:
    """Serves Prometheus metrics on host:port (`/metrics`); port 0 leaves metrics off."""
    if not port:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service_name, "service.namespace": "orderline"}),
        metric_readers=[PrometheusMetricReader()],
    )
    metrics.set_meter_provider(provider)
