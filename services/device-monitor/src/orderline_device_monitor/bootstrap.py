"""The composition root: loads the alarm rules, wires the database, the health book, the use
cases, the servicers, the consumer of provisioning events, the partition leases and routing
(or, with none, the restore task) and the heartbeat ticker into one Service. A malformed rules
file stops the start here (one line, see ``domain/rules.py``)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.adapters.agent import GrpcDeviceAgent
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.adapters.tables import metadata
from orderline_device_monitor.api.health import DeviceHealthApi
from orderline_device_monitor.api.routing import PartitionRouting
from orderline_device_monitor.api.telemetry import TelemetryIngestApi
from orderline_device_monitor.app import handlers
from orderline_device_monitor.app.agent import DeviceAgent, NoRemoteReboot
from orderline_device_monitor.app.alarm_desk import AlarmDesk
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.escalation import Escalation
from orderline_device_monitor.app.heartbeat import HeartbeatTicker
from orderline_device_monitor.app.ingest import TelemetryIngest
from orderline_device_monitor.app.ownership import Ownership
from orderline_device_monitor.app.partitions import Partitions
from orderline_device_monitor.app.queries import DeviceHealthQueries
from orderline_device_monitor.app.startup import HealthBookRestorer
from orderline_device_monitor.app.ticket_requests import TicketRequests
from orderline_device_monitor.app.tickets import TicketDesk
from orderline_device_monitor.domain.escalation import EscalationPolicy
from orderline_device_monitor.domain.rules import (
    RULES_FILE,
    RuleSet,
    load_rules,
    with_heartbeat_interval,
)
from orderline_device_monitor.settings import DeviceMonitorSettings
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.messaging.lease import default_holder
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE_NAME = "device-monitor"


ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = (
    "orderline.device.v1.TelemetryIngestService",
    "orderline.device.v1.DeviceHealthService",
)


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


def rules_for(settings: DeviceMonitorSettings, path: Path = RULES_FILE) -> RuleSet:
    """The shipped rules; an explicitly set ORDERLINE_TELEMETRY_STALE_SECONDS overrides every
    model's heartbeat interval (left unset, each model's own interval applies)."""
    rules = load_rules(path)
    if "telemetry_stale_seconds" in settings.model_fields_set:
        rules = with_heartbeat_interval(rules, timedelta(seconds=settings.telemetry_stale_seconds))
    return rules


def build(
    settings: DeviceMonitorSettings | None = None,
    *,
    rules: RuleSet | None = None,
    clock: Clock = system_clock,
    agent: DeviceAgent | None = None,
    escalation: EscalationPolicy | None = None,
) -> Service[DeviceRepository]:
    """The service; tests inject the clock (the recovery window runs on it), the device agent
    first-line troubleshooting calls, and the escalation policy."""
    settings = settings or load_settings(DeviceMonitorSettings, SERVICE_NAME)
    # Before anything else: a bad rules file must stop the start, not a half-built service.
    rules = rules or rules_for(settings)
    service = Service(
        settings,
        clock=clock,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=DeviceRepository,
    )
    partitioned = settings.leader_lease_seconds > 0
    book = HealthBook(Partitions(settings.device_partitions if partitioned else 1))
    ingest = TelemetryIngest(service.uow, book, service.clock, rules)
    queries = DeviceHealthQueries(service.uow, book, service.clock, rules)
    ticket_desk = TicketDesk(service.uow, book, ingest.lock, service.clock, rules)
    if agent is None:
        address = settings.device_agent_address.strip()
        agent = GrpcDeviceAgent(address, service.call_options) if address else NoRemoteReboot()
    escalator = Escalation(
        service.uow,
        book,
        ticket_desk,
        service.clock,
        agent,
        escalation
        or EscalationPolicy(recovery_window=rules.recovery_window, line_hold=rules.site.window),
    )
    health_api: Any = DeviceHealthApi(
        queries, AlarmDesk(service.uow, book, ingest, service.clock), ticket_desk
    )
    if partitioned:
        replica = settings.replica_id or default_holder()

        def reachable_at() -> str:
            return settings.replica_address or f"{_reachable_host(settings)}:{service.grpc.port}"

        ownership = Ownership(
            service.bus,
            service.uow,
            book,
            ingest,
            database_url=service.db.url,
            replica=replica,
            ttl_seconds=settings.leader_lease_seconds,
            address=reachable_at,
            on_taken=escalator.restore_later,
        )
        routing = PartitionRouting(service.uow, ownership, replica)
        ingest_api: Any = TelemetryIngestApi(ingest, routing)
        health_api = routing.wrap(
            health_api,
            device_pb2.DESCRIPTOR.services_by_name["DeviceHealthService"],
            device_pb2_grpc.DeviceHealthServiceStub,
        )
        service.add_readiness(ownership.serving)
        service.add_task("partitions", ownership.run, needs_bus=True)
    else:
        ingest_api = TelemetryIngestApi(ingest)
        service.add_task("restore-health", HealthBookRestorer(service.uow, book).run)
    service.add_grpc_service(
        device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server,
        ingest_api,
        "orderline.device.v1.TelemetryIngestService",
    )
    service.add_grpc_service(
        device_pb2_grpc.add_DeviceHealthServiceServicer_to_server,
        health_api,
        "orderline.device.v1.DeviceHealthService",
    )
    service.consume(handlers.HANDLERS)
    service.add_task("heartbeat", HeartbeatTicker(ingest).run)
    service.add_task("ticket-requests", TicketRequests(service.uow, book, ticket_desk).run)
    service.add_task("escalation", escalator.run)
    return service


def _reachable_host(settings: DeviceMonitorSettings) -> str:
    """The host the other replicas reach this one at, when no address is configured: the
    listening host, or this machine's name when listening on every interface."""
    host = settings.grpc_host
    return socket.gethostname() if host in ("", "0.0.0.0", "::", "[::]") else host
