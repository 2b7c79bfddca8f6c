"""Shared runtime for Orderline services: what every service does the same way.

The names below are the runtime's public API, the ones a service may rely on between
versions; anything else (the relay, the gRPC edge, the consumer's internals) is wiring that
`Service` assembles and may change. Submodules stay importable by path
(`from orderline_runtime.settings import ServiceSettings` and `from orderline_runtime import
ServiceSettings` are the same object).
"""

from orderline_runtime import errors
from orderline_runtime.database import Database
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler, HandlerFn
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.messaging.tables import add_messaging_tables, create_messaging_tables
from orderline_runtime.metrics import stage_duration
from orderline_runtime.migrations import run_env
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.rpc.client import traced_channel
from orderline_runtime.service import Service, run_service
from orderline_runtime.settings import ServiceSettings, load_settings
from orderline_runtime.telemetry import order_scope, tracer

# Sorted; by concern: a service (ServiceSettings, load_settings, Service, run_service); storage
# (Database, add_/create_messaging_tables, run_env); consumed events (Handler, HandlerFn,
# ReceivedEvent); the error taxonomy mapped to gRPC codes at the edge (errors); calls
# (current_principal, traced_channel); telemetry and ids (get_logger, order_scope, tracer,
# stage_duration, new_id).
__all__ = [
    "Database",
    "Handler",
    "HandlerFn",
    "ReceivedEvent",
    "Service",
    "ServiceSettings",
    "add_messaging_tables",
    "create_messaging_tables",
    "current_principal",
    "errors",
    "get_logger",
    "load_settings",
    "new_id",
    "order_scope",
    "run_env",
    "run_service",
    "stage_duration",
    "traced_channel",
    "tracer",
]
