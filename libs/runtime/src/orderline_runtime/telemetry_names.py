"""Our own telemetry names, in one place: span attribute keys, span names and metric names.

Services, the relay and consumer, `orderline trace` and the tests use these, so a dashboard or a
trace query written against one name keeps working. Standard OpenTelemetry keys (`messaging.*`,
`rpc.*`) are not repeated here.
"""

from __future__ import annotations

# --- span attributes (every span of an order carries ORDER_ID) ------------------------------
ORDER_ID = "orderline.order_id"
DEVICE_ID = "orderline.device_id"
EVENT_TYPE = "orderline.event_type"
JOB_ID = "orderline.job_id"
STEP = "orderline.step"
ATTEMPT = "orderline.attempt"
JOB_STATE = "orderline.job_state"
REASON = "orderline.reason"


# --- span names -----------------------------------------------------------------------------
def publish_span(event_type: str) -> str:
    """The relay publishing one outbox row."""
    return f"publish {event_type}"


def handle_span(service: str, event_type: str) -> str:
    """A consumer handling one event."""
    return f"{service} handle {event_type}"


def step_span(step: str) -> str:
    """Provisioning running one step of a job."""
    return f"provisioning step {step}"


HEALTH_CHANGE_SPAN = "device-monitor record health change"


# --- metrics (OpenTelemetry names; Prometheus shows them with _ and a unit or _total suffix) --
EVENTS_HANDLED = "orderline.events.handled"
EVENTS_REDELIVERED = "orderline.events.redelivered"
EVENTS_DEAD_LETTERED = "orderline.events.dead_lettered"
OUTBOX_PUBLISHED = "orderline.outbox.published"
OUTBOX_LAG = "orderline.outbox.lag"
STAGE_DURATION = "orderline.stage.duration"


def prometheus_counter(name: str) -> str:
    """orderline.events.handled -> orderline_events_handled_total"""
    return name.replace(".", "_") + "_total"


def prometheus_histogram(name: str, unit: str = "seconds") -> str:
    """orderline.outbox.lag -> orderline_outbox_lag_seconds"""
    return f"{name.replace('.', '_')}_{unit}"
