"""The composition root: wires the database, the health book, the use cases, the servicers,
the consumer of provisioning events and the restore task into one Service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orderline.device.v1 import device_pb2_grpc
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.adapters.tables import metadata
from orderline_device_monitor.api.health import DeviceHealthApi
from orderline_device_monitor.api.telemetry import TelemetryIngestApi
from orderline_device_monitor.app import handlers
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.ingest import TelemetryIngest
from orderline_device_monitor.app.queries import DeviceHealthQueries
from orderline_device_monitor.app.startup import HealthBookRestorer
from orderline_device_monitor.settings import DeviceMonitorSettings
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE_NAME = "device-monitor"
_READERS = frozenset({"clerk", "engineer", "maintenance", "auditor", "manager", "service"})

# Roles per RPC, from docs/architecture.md (deny by default).
POLICY: dict[str, frozenset[str]] = {
    "/orderline.device.v1.TelemetryIngestService/StreamTelemetry": frozenset({"service"}),
    "/orderline.device.v1.DeviceHealthService/GetDeviceHealth": _READERS,
    "/orderline.device.v1.DeviceHealthService/CheckFitness": _READERS,
    "/orderline.device.v1.DeviceHealthService/ListAlarms": _READERS,
}


def build(settings: DeviceMonitorSettings | None = None) -> Service[DeviceRepository]:
    settings = settings or load_settings(DeviceMonitorSettings, SERVICE_NAME)
    service = Service(
        settings,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=POLICY,
        repositories=DeviceRepository,
    )
    book = HealthBook()
    ingest = TelemetryIngest(service.uow, book, service.clock)
    queries = DeviceHealthQueries(
        service.uow,
        book,
        service.clock,
        stale_after=timedelta(seconds=settings.telemetry_stale_seconds),
    )
    service.add_grpc_service(
        device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server,
        TelemetryIngestApi(ingest),
        "orderline.device.v1.TelemetryIngestService",
    )
    service.add_grpc_service(
        device_pb2_grpc.add_DeviceHealthServiceServicer_to_server,
        DeviceHealthApi(queries),
        "orderline.device.v1.DeviceHealthService",
    )
    service.consume(handlers.HANDLERS)
    service.add_task("restore-health", HealthBookRestorer(service.uow, book).run)
    return service
