"""Composition root: wires reporting's database, one consumer per stream, servicer and policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.adapters.tables import metadata
from orderline_reporting.api.reporting import ReportingApi
from orderline_reporting.app.checkpoints import CheckpointPruner
from orderline_reporting.app.daily import DailyReporter
from orderline_reporting.app.projector import Projector
from orderline_reporting.app.rebuild import Rebuilder
from orderline_reporting.app.reports import ReportQueries
from orderline_reporting.settings import ReportingSettings
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.messaging.consumer import EventConsumer, Handler
from orderline_runtime.messaging.streams import StreamSpec
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE = "orderline.reporting.v1.ReportingService"


ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = ("orderline.reporting.v1.ReportingService",)


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


def build(
    settings: ReportingSettings | None = None,
    clock: Clock = system_clock,
    *,
    before_swap: Callable[[], Awaitable[None]] | None = None,
) -> Service[ProjectionRepository]:
    """The service; `clock` (the reports' "now" and the daily schedule) is injected by tests,
    and so is `before_swap` (run by a rebuild that replaces the live projection just before
    the swap, app/rebuild.py)."""
    settings = settings or load_settings(ReportingSettings, "reporting")
    service = Service(
        settings,
        clock=clock,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=ProjectionRepository,
    )
    queries = ReportQueries(service.uow, service.clock)

    async def caught_up() -> bool:
        """Every consumer of reporting has read what its stream holds (app/daily.py)."""
        try:
            backlogs = [await consumer.backlog() for consumer in service.consumers]
        except Exception:  # NATS cannot tell now: not caught up, ask again later
            return False
        return all(b == 0 for b in backlogs)

    daily = DailyReporter(service.uow, queries, service.clock, caught_up=caught_up)
    service.add_grpc_service(
        reporting_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingApi(
            queries,
            Rebuilder(
                service.bus,
                service.uow,
                Path(__file__).parent / "migrations",
                consumer=service.name,
                clock=service.clock,
                before_swap=before_swap,
            ),
            daily,
        ),
        SERVICE,
    )
    # The daily report, once each local day has ended (app/daily.py).
    service.add_task("daily-report", daily.run)
    # The checkpoints bounded: the last N and one per hour of event time (app/checkpoints.py).
    service.add_task(
        "checkpoint-pruning",
        CheckpointPruner(service.uow, settings.reporting_checkpoints_kept).run,
    )
    # One durable consumer per stream. DEADLETTER is not consumed: its messages are not
    # envelopes, and a reader that dead-letters what it cannot parse must not read its own.
    # Each event carries its stream sequence: the projection's digest is recorded per stream
    # position (domain/digest.py).
    handlers = Projector().handlers()
    by_stream: dict[StreamSpec, list[Handler]] = {}
    for handler in handlers:
        by_stream.setdefault(handler.spec.stream, []).append(handler)
    for stream, stream_handlers in by_stream.items():
        service.consumers.append(
            EventConsumer(
                service=service.name,
                stream=stream,
                handlers=stream_handlers,
                unit_of_work=service.uow,
                inbox=service.inbox_table,
                bus=service.bus,
                clock=service.clock,
                # Reports are off an order's critical path: waiting 50 ms for more events
                # lets one transaction (lock, digest, counts, commit) serve several.
                linger_seconds=0.05,
            )
        )
    return service
