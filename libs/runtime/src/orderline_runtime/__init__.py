"""Shared runtime for Orderline services: what every service does the same way.

The names below are the runtime's public API, the ones a service may rely on between
versions; anything else (the relay, the gRPC edge, the consumer's internals) is wiring that
`Service` assembles and may change. Submodules stay importable by path
(`from orderline_runtime.settings import ServiceSettings` and `from orderline_runtime import
ServiceSettings` are the same object).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderline_runtime import errors, telemetry_names
    from orderline_runtime.clock import Clock, system_clock
    from orderline_runtime.columns import SEQUENCE, UTCDateTime
    from orderline_runtime.database import Database, SqlConnection, dialect_of
    from orderline_runtime.ids import new_id
    from orderline_runtime.logs import get_logger
    from orderline_runtime.messaging.catalogue import EventSpec, catalogue
    from orderline_runtime.messaging.consumer import Handler, HandlerFn
    from orderline_runtime.messaging.envelope import ReceivedEvent
    from orderline_runtime.messaging.tables import add_messaging_tables, create_messaging_tables
    from orderline_runtime.metrics import stage_duration
    from orderline_runtime.migrations import run_env
    from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
    from orderline_runtime.rpc.auth import current_principal
    from orderline_runtime.rpc.client import open_channel, traced_call
    from orderline_runtime.service import Service, run_service
    from orderline_runtime.settings import ServiceSettings, load_settings
    from orderline_runtime.telemetry import order_scope, tracer
    from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

# Where each public name lives, imported on first use: a tool that needs one small module (the
# CLI reading order states) does not pay for the gRPC server, SQLAlchemy and OpenTelemetry.
_LAZY: dict[str, str] = {
    "add_messaging_tables": "orderline_runtime.messaging.tables",
    "BadPageToken": "orderline_runtime.paging",
    "catalogue": "orderline_runtime.messaging.catalogue",
    "Clock": "orderline_runtime.clock",
    "create_messaging_tables": "orderline_runtime.messaging.tables",
    "current_principal": "orderline_runtime.rpc.auth",
    "Database": "orderline_runtime.database",
    "decode_page_token": "orderline_runtime.paging",
    "dialect_of": "orderline_runtime.database",
    "encode_page_token": "orderline_runtime.paging",
    "errors": "orderline_runtime.errors",
    "EventSpec": "orderline_runtime.messaging.catalogue",
    "get_logger": "orderline_runtime.logs",
    "Handler": "orderline_runtime.messaging.consumer",
    "HandlerFn": "orderline_runtime.messaging.consumer",
    "load_settings": "orderline_runtime.settings",
    "new_id": "orderline_runtime.ids",
    "order_scope": "orderline_runtime.telemetry",
    "ReceivedEvent": "orderline_runtime.messaging.envelope",
    "run_env": "orderline_runtime.migrations",
    "run_service": "orderline_runtime.service",
    "SEQUENCE": "orderline_runtime.columns",
    "Service": "orderline_runtime.service",
    "ServiceSettings": "orderline_runtime.settings",
    "SqlConnection": "orderline_runtime.database",
    "stage_duration": "orderline_runtime.metrics",
    "system_clock": "orderline_runtime.clock",
    "telemetry_names": "orderline_runtime.telemetry_names",
    "open_channel": "orderline_runtime.rpc.client",
    "traced_call": "orderline_runtime.rpc.client",
    "tracer": "orderline_runtime.telemetry",
    "UnitOfWork": "orderline_runtime.unit_of_work",
    "UnitOfWorkFactory": "orderline_runtime.unit_of_work",
    "UTCDateTime": "orderline_runtime.columns",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orderline_runtime' has no attribute {name!r}")
    if module == f"orderline_runtime.{name}":
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


# Sorted; by concern: a service (ServiceSettings, load_settings, Service, run_service, Clock,
# system_clock); use cases (UnitOfWork, UnitOfWorkFactory); storage (Database, dialect_of,
# SqlConnection, SEQUENCE, UTCDateTime, add_/create_messaging_tables, run_env); events
# (catalogue, EventSpec, Handler, HandlerFn, ReceivedEvent); the error taxonomy mapped to gRPC
# codes at the edge (errors); RPCs (current_principal, open_channel, traced_call, page
# tokens); telemetry and ids (telemetry_names, get_logger, order_scope, tracer, stage_duration,
# new_id).
__all__ = [
    "SEQUENCE",
    "BadPageToken",
    "Clock",
    "Database",
    "EventSpec",
    "Handler",
    "HandlerFn",
    "ReceivedEvent",
    "Service",
    "ServiceSettings",
    "SqlConnection",
    "UTCDateTime",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "add_messaging_tables",
    "catalogue",
    "create_messaging_tables",
    "current_principal",
    "decode_page_token",
    "dialect_of",
    "encode_page_token",
    "errors",
    "get_logger",
    "load_settings",
    "new_id",
    "open_channel",
    "order_scope",
    "run_env",
    "run_service",
    "stage_duration",
    "system_clock",
    "telemetry_names",
    "traced_call",
    "tracer",
]
