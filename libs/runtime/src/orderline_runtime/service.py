"""The composition every service shares: database, bus, outbox relay, consumers, gRPC server,
health, and a lifecycle that starts them in order and stops them gracefully.

A service's bootstrap builds a `Service` with its repositories, hands `service.uow` (the unit
of work factory) to its app, registers servicers, event handlers and background tasks, and
hands it to `run_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from sqlalchemy import MetaData

from orderline_runtime import loop_load
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.database import Database, SqlConnection
from orderline_runtime.logs import get_logger, setup_logging
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.consumer import EventConsumer, Handler
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.relay import OutboxRelay
from orderline_runtime.messaging.streams import StreamSpec
from orderline_runtime.metrics import setup_metrics
from orderline_runtime.rpc.auth import configure_identity
from orderline_runtime.rpc.client import call_options
from orderline_runtime.rpc.limits import WriteRateLimiter
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.rpc.tls import set_client_tls
from orderline_runtime.settings import ServiceSettings
from orderline_runtime.telemetry import setup_tracing, shutdown_tracing
from orderline_runtime.unit_of_work import SqlUnitOfWork

log = get_logger(__name__)

R = TypeVar("R")
TaskFn = Callable[[asyncio.Event], Awaitable[None]]
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class IdentityNotConfigured(Exception):
    """The service has no way to authenticate its callers (or to call its peers)."""


class Service(Generic[R]):
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        metadata: MetaData,
        migrations: Path,
        policy: Mapping[str, frozenset[str]],
        repositories: Callable[[SqlConnection], R],
        clock: Clock = system_clock,
    ) -> None:
        self.name = settings.service_name
        self.settings = settings
        self.migrations = migrations
        self.db = Database(
            settings.resolved_database_url(),
            lock_timeout_seconds=settings.database_lock_timeout_seconds,
        )
        self.outbox_table = metadata.tables["outbox"]
        self.inbox_table = metadata.tables["inbox"]
        self.clock = clock
        self.outbox = Outbox(self.name, self.outbox_table, clock)
        self.repositories = repositories
        creds = settings.nats_credentials_file
        nats_user, nats_password = settings.nats_user_password()
        self.bus = EventBus(
            settings.nats_url,
            name=self.name,
            credentials_file=str(creds) if creds else None,
            user=nats_user,
            password=nats_password,
            tls=settings.nats_tls(),
        )
        self.identity = configure_identity(
            self.name,
            tokens_file=settings.auth_tokens_file,
            allow_development_tokens=settings.allow_development_tokens,
            service_token=settings.service_token,
            calls_peers=settings.calls_other_services,
            jwt=settings.jwt_config(),
        )
        self.grpc = GrpcServer(
            authenticator=self.identity.authenticator,
            policy=policy,
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            max_message_bytes=settings.max_message_bytes,
            max_text_chars=settings.max_text_chars,
            write_rate=WriteRateLimiter(
                settings.write_rate_per_principal, settings.write_burst_per_principal
            ),
            tls=settings.tls_config(),
        )
        # Every channel this process opens to a peer presents its certificate.
        set_client_tls(settings.tls_config())
        self.relay = OutboxRelay(self.db, self.outbox, self.bus)
        self.consumers: list[EventConsumer] = []
        self._tasks: list[tuple[str, TaskFn, bool]] = []
        self.stop_event = asyncio.Event()
        self._migrated = asyncio.Event()
        self._readiness: list[Callable[[], bool]] = []

    # --- registration -------------------------------------------------------------------

    def add_grpc_service(
        self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str
    ) -> None:
        self.grpc.add_service(add_to_server, servicer, full_name)

    def uow(self, *, read_only: bool = False) -> SqlUnitOfWork[R]:
        """A unit of work on this service's database and outbox (a `UnitOfWorkFactory`)."""
        return SqlUnitOfWork(
            self.db, self.outbox, self.repositories, producer=self.name, read_only=read_only
        )

    def consume(self, handlers: Sequence[Handler], **options: Any) -> None:
        """Registers event handlers: one durable consumer per stream their payloads are on."""
        by_stream: dict[StreamSpec, list[Handler]] = {}
        for handler in handlers:
            by_stream.setdefault(handler.spec.stream, []).append(handler)
        for stream, stream_handlers in by_stream.items():
            self.consumers.append(
                EventConsumer(
                    service=self.name,
                    stream=stream,
                    handlers=stream_handlers,
                    unit_of_work=self.uow,
                    inbox=self.inbox_table,
                    bus=self.bus,
                    clock=self.clock,
                    **options,
                )
            )

    @property
    def consumed_event_types(self) -> frozenset[str]:
        return frozenset(t for c in self.consumers for t in c.handlers)

    def add_readiness(self, check: Callable[[], bool]) -> None:
        """One more condition of serving (checked each second with the database and NATS): a
        replica on standby, say, answers NOT_SERVING so balancers send it nothing."""
        self._readiness.append(check)

    def add_task(self, name: str, fn: TaskFn, *, needs_bus: bool = False) -> None:
        """A background loop that runs until the stop event is set (restarted if it crashes),
        started once the database is migrated (and NATS connected, with `needs_bus`)."""
        self._tasks.append((name, fn, needs_bus))

    def call_options(self) -> dict[str, Any]:
        token = self.identity.service_token
        if token is None:
            # Only a service that did not declare calls_other_services gets here.
            raise RuntimeError(f"{self.name}: ORDERLINE_SERVICE_TOKEN is unset")
        return call_options(token, self.settings.call_timeout_seconds)

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        if self.identity.problem is not None:
            raise IdentityNotConfigured(self.identity.problem)
        if self.identity.development:
            log.warning(
                "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS: accepting the well-known development "
                "tokens dev-<role>; never use this outside development"
            )
        elif self.settings.allow_development_tokens:
            log.info(
                "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS ignored: a tokens file or JWKS is configured"
            )
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self.stop_event.set)
        try:
            await self._serve()
        finally:
            # Give the signals back: Ctrl-C after run() returns must not be swallowed.
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    async def _serve(self) -> None:
        port = await self.grpc.start(
            self.settings.grpc_host,
            self.settings.resolved_grpc_port(),
            health_port=self.settings.health_port,
        )
        print(f"{self.name} listening on {self.settings.grpc_host}:{port}", flush=True)
        log.info("grpc listening", port=port)
        running = [
            asyncio.create_task(self._prepare_database(), name="migrate"),
            asyncio.create_task(self.bus.connect(), name="nats-connect"),
            # Supervised like the loops: a readiness check that raises must not end the
            # health loop and leave the last answer standing for good.
            asyncio.create_task(
                self._supervise("health", lambda _stop: self._watch_health()), name="health"
            ),
        ]
        loops: list[asyncio.Task[None]] = [
            asyncio.create_task(
                self._supervise("relay", self._after_ready(self.relay.run, needs_bus=True))
            )
        ]
        for consumer in self.consumers:
            loops.append(
                asyncio.create_task(
                    self._supervise(
                        f"consumer {consumer.stream.name}",
                        self._after_ready(consumer.run, needs_bus=True),
                    )
                )
            )
        for name, fn, needs_bus in self._tasks:
            loops.append(
                asyncio.create_task(
                    self._supervise(name, self._after_ready(fn, needs_bus=needs_bus))
                )
            )
        await self.stop_event.wait()
        log.info("stopping")
        await self._shutdown(running, loops)

    async def _prepare_database(self) -> None:
        if not self.settings.migrate_on_start:
            self._migrated.set()
            return
        # Imported only when this process migrates: pods started with migrate_on_start off (the
        # chart runs a migration Job) never load Alembic, about 9 MiB of resident memory.
        from orderline_runtime.migrations import upgrade_to_head

        delay = 0.5
        while not self.stop_event.is_set():
            try:
                await upgrade_to_head(self.migrations, self.db.url)
                self._migrated.set()
                log.info("database migrated")
                return
            except Exception as exc:
                log.warning("migration failed, retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _after_ready(self, fn: TaskFn, *, needs_bus: bool = False) -> TaskFn:
        """Starts fn once the database (and NATS) is ready; a stop while waiting ends it, so a
        service that never got ready still stops at once rather than after the grace."""

        async def gated(stop: asyncio.Event) -> None:
            for ready in (self._migrated, self.bus.ready) if needs_bus else (self._migrated,):
                if not await _first_of(ready, stop):
                    return
            await fn(stop)

        return gated

    async def _supervise(self, name: str, fn: TaskFn) -> None:
        while not self.stop_event.is_set():
            try:
                await fn(self.stop_event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task crashed; restarting", task=name)
                await asyncio.sleep(1.0)

    async def _watch_health(self) -> None:
        serving: bool | None = None
        served = False
        while not self.stop_event.is_set():
            ok = (
                self._migrated.is_set()
                and self.bus.ready.is_set()
                and self.bus.connected
                and all(check() for check in self._readiness)
                and await self.db.ping()
            )
            if ok != serving:
                await self.grpc.set_serving(ok)
                log.info("health", serving=ok)
                if ok and not served:
                    _freeze_startup_heap()
                    served = True
                serving = ok
            # Until it first serves, look again soon: migrating and connecting take a fraction
            # of a second, and whoever waits for SERVING (a rollout, a test) waits on this.
            interval = 1.0 if served else 0.05
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=interval)

    async def _shutdown(
        self, running: list[asyncio.Task[None]], loops: list[asyncio.Task[None]]
    ) -> None:
        grace = self.settings.shutdown_grace_seconds
        # Not serving first, so balancers stop sending; then let in-flight RPCs finish.
        await self.grpc.stop(grace)
        # Loops see the stop event, finish the message or step in hand, and return.
        _, pending = await asyncio.wait(loops, timeout=grace) if loops else (set(), set())
        for task in [*pending, *running]:
            task.cancel()
        await asyncio.gather(*pending, *running, return_exceptions=True)
        await self.bus.drain()
        await self.db.dispose()
        shutdown_tracing()
        log.info("stopped")


async def _first_of(ready: asyncio.Event, stop: asyncio.Event) -> bool:
    """Waits until `ready` or `stop` is set; True when ready."""
    waiters = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return ready.is_set() and not stop.is_set()


def run_service(build: Callable[[], Service[Any]]) -> None:
    """Entry point: `<service>` serves, `<service> migrate` applies migrations and exits."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command not in ("serve", "migrate"):
        raise SystemExit("usage: orderline-<service> [serve|migrate]")

    async def main() -> int:
        # Built inside the loop that runs it: grpc.aio binds its server to the current loop.
        try:
            service = build()
        except (OSError, ValueError, KeyError) as exc:
            # A file a setting names that is there but wrong (a tokens file that is not JSON,
            # say): one line for the operator, not a traceback.
            name = build.__module__.split(".")[0].removeprefix("orderline_").replace("_", "-")
            print(f"{name}: invalid configuration: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        if command == "serve" and service.identity.problem is not None:
            # Before logging, tracing and metrics start: the one line is all the operator sees.
            print(service.identity.problem, file=sys.stderr)
            await service.db.dispose()
            return 2
        setup_logging(service.name, service.settings.log_level)
        if command == "migrate":
            from orderline_runtime.migrations import upgrade_to_head

            await upgrade_to_head(service.migrations, service.db.url)
            await service.db.dispose()
            print(f"{service.name}: database migrated")
            return 0
        setup_tracing(service.name, service.settings.trace_dir)
        loop_load.configure(service.settings.shed_loop_busy)
        setup_metrics(service.name, service.settings.grpc_host, service.settings.metrics_port)
        await service.run()
        return 0

    # Exits outside the event loop: a SystemExit raised inside it can surface as a task error.
    with asyncio.Runner(loop_factory=loop_load.new_event_loop) as runner:
        code = runner.run(main())
    if code:
        raise SystemExit(code)


def _freeze_startup_heap() -> None:
    """Once a service first serves, everything built to start it (modules, protobuf
    descriptors, SQLAlchemy's tables and compiled statements, the catalogue, the rules) lives
    as long as the process. Moving those objects out of the cyclic collector's generations
    (gc.freeze) spares every later full collection from walking them again: the device
    monitor's ingest spent a fifth to a third of its time in the collector before. Garbage
    first, so nothing unreachable is kept for ever. Once per process: a test that runs many
    services in one process freezes its heap once, not at every start."""
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()
    _return_free_heap()


def _return_free_heap() -> None:
    """Gives the pages that start-up freed (import-time garbage, migrations' and the rules'
    temporary objects) back to the kernel: glibc keeps them in the heap otherwise, and they
    count in the pod's resident memory for ever (about 4 MiB of an idle service). Elsewhere
    than glibc (musl, macOS) there is no such call and nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


_heap_frozen = False
