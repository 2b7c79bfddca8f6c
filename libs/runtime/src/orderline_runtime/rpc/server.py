"""The gRPC server of every service: health, reflection, tracing, auth, errors, admission."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orderline_runtime.rpc.auth import TokenAuthenticator
from orderline_runtime.rpc.interceptor import EdgeInterceptor
from orderline_runtime.rpc.limits import WriteRateLimiter
from orderline_runtime.rpc.tls import TlsConfig

# The health status a liveness probe asks: SERVING from start until shutdown, whatever the
# database or NATS do, so an outage takes pods out of rotation (readiness, the server-wide
# status) without restarting them all. What it catches is a process that no longer answers.
LIVENESS = "liveness"


class GrpcServer:
    def __init__(
        self,
        *,
        authenticator: TokenAuthenticator,
        policy: Mapping[str, frozenset[str]],
        max_concurrent_rpcs: int,
        max_message_bytes: int = 1024 * 1024,
        max_text_chars: int = 2000,
        write_rate: WriteRateLimiter | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        # With tls, only TLS (and, when it requires them, clients with a certificate signed by
        # its CA) is served; without, plaintext as in development.
        self.tls = tls
        # Past max_concurrent_rpcs gRPC answers RESOURCE_EXHAUSTED at once instead of queueing;
        # a request larger than max_message_bytes is refused the same way, before it is decoded.
        # The edge interceptor also opens each call's SERVER span (not health or reflection).
        self.server = grpc.aio.server(
            interceptors=[
                EdgeInterceptor(
                    authenticator, policy, max_text_chars=max_text_chars, write_rate=write_rate
                ),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names: list[str] = []
        self.port = 0
        # A plaintext port serving grpc.health.v1 only (the same statuses), for probes that
        # cannot speak TLS: the kubelet's native gRPC probes. Started only when asked for.
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0

    def add_service(
        self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str
    ) -> None:
        add_to_server(servicer, self.server)
        self.service_names.append(full_name)

    async def start(self, host: str, port: int, health_port: int | None = None) -> int:
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        if self.tls is None:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        else:
            self.port = self.server.add_secure_port(f"{host}:{port}", self.tls.server_credentials())
        if self.port == 0:
            raise OSError(f"cannot bind gRPC server to {host}:{port}")
        await self.set_serving(False)
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.server.start()
        if health_port is not None:
            self.health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(f"{host}:{health_port}")
            if self.health_port == 0:
                raise OSError(f"cannot bind the health port to {host}:{health_port}")
            await self.health_server.start()
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        # NOT_SERVING for every service, and no later set() can flip it back to SERVING.
        await self.health.enter_graceful_shutdown()
        if self.health_server is not None:
            await self.health_server.stop(0)
        await self.server.stop(grace)
