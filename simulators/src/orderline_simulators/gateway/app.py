"""Wires the gateway: domain, servicer, server."""

from __future__ import annotations

import random

import grpc

from orderline.gateway.v1 import gateway_pb2_grpc
from orderline_simulators.common.auth import CallerIdentity, CallerInterceptor, log_identity
from orderline_simulators.common.logs import get_logger
from orderline_simulators.common.server import ServerSpec, serve
from orderline_simulators.gateway.api import NEEDS, SERVICE_NAME, NotificationGatewayApi
from orderline_simulators.gateway.domain import Faults, Gateway
from orderline_simulators.gateway.settings import GatewaySettings

log = get_logger("notification-gateway")


def build_spec(settings: GatewaySettings, identity: CallerIdentity) -> ServerSpec:
    gateway = Gateway(
        Faults(
            settings.gateway_failure_rate,
            settings.gateway_delay_ms,
            settings.gateway_delivery_failure_rate,
            settings.gateway_report_delay_ms,
        ),
        rng=random.Random(settings.gateway_seed),
    )
    api = NotificationGatewayApi(gateway)

    def register(server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_NotificationGatewayServiceServicer_to_server(api, server)

    log.info(
        "gateway created",
        failure_rate=settings.gateway_failure_rate,
        delay_ms=settings.gateway_delay_ms,
        delivery_failure_rate=settings.gateway_delivery_failure_rate,
        report_delay_ms=settings.gateway_report_delay_ms,
    )
    log_identity(identity, "notification-gateway")
    return ServerSpec(
        name="notification-gateway",
        host=settings.gateway_host,
        port=settings.gateway_port,
        service_names=(SERVICE_NAME,),
        register=register,
        grace_seconds=settings.shutdown_grace_seconds,
        tls=settings.tls_config(),
        interceptors=(CallerInterceptor(identity, (SERVICE_NAME,), NEEDS),),
    )


async def run(settings: GatewaySettings, identity: CallerIdentity) -> int:
    return await serve(build_spec(settings, identity))
