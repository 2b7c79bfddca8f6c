"""Serve grpc.aio until SIGTERM/SIGINT: health, reflection, the `ready on` line, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orderline_runtime.rpc.tls import TlsConfig
from orderline_simulators.common.logs import get_logger

log = get_logger("server")

BackgroundJob = Callable[[], Awaitable[None]]
RESTART_SECONDS = 1.0


@dataclass
class ServerSpec:
    """What to serve and where."""

    name: str
    host: str
    port: int
    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server], None]
    grace_seconds: float = 10.0
    background: Sequence[BackgroundJob] = field(default_factory=tuple)
    # Mutual TLS (the services' certificates and CA); None: plaintext.
    tls: TlsConfig | None = None
    # Run on every call before the servicer (common/auth.py's CallerInterceptor).
    interceptors: Sequence[grpc.aio.ServerInterceptor] = field(default_factory=tuple)


class BindError(RuntimeError):
    """The server could not listen on the configured address."""


class SimulatorServer:
    """A started gRPC server with the standard health service reporting SERVING."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.server = grpc.aio.server(interceptors=list(spec.interceptors))
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        spec = self.spec
        spec.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        address = f"{spec.host}:{spec.port}"
        try:
            if spec.tls is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, spec.tls.server_credentials())
        except RuntimeError as exc:
            raise BindError(f"cannot listen on {address}: {exc}") from exc
        if self.port == 0:
            raise BindError(f"cannot listen on {address}")
        await self.server.start()
        for name in ("", *spec.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        for job in spec.background:
            self._tasks.append(asyncio.create_task(_guarded(job), name=f"{spec.name}-background"))
        return self.port

    async def stop(self) -> None:
        """NOT_SERVING first, then stop background work, then let in-flight RPCs finish."""
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(self.spec.grace_seconds)


async def _guarded(job: BackgroundJob) -> None:
    """Runs a background job for the life of the server; a crash is logged and it restarts."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background job crashed; restarting", retry_in_seconds=RESTART_SECONDS)
            await asyncio.sleep(RESTART_SECONDS)


async def serve(spec: ServerSpec) -> int:
    """Serves until SIGTERM or SIGINT. Returns the process exit status."""
    server = SimulatorServer(spec)
    try:
        port = await server.start()
    except BindError as exc:
        log.error("bind failed", error=str(exc))
        print(f"{spec.name}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("serving", simulator=spec.name, host=spec.host, port=port)
    print(f"ready on {spec.host}:{port}", flush=True)
    await stop.wait()
    log.info("stopping", simulator=spec.name, grace_seconds=spec.grace_seconds)
    await server.stop()
    log.info("stopped", simulator=spec.name)
    return 0
