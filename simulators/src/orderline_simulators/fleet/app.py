"""Wires the fleet: domain, telemetry, servicer, streamer, server."""

from __future__ import annotations

import grpc

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline_simulators.common.auth import CallerIdentity, CallerInterceptor, log_identity
from orderline_simulators.common.logs import get_logger
from orderline_simulators.common.server import BackgroundJob, ServerSpec, serve
from orderline_simulators.fleet.api import DeviceAgentApi
from orderline_simulators.fleet.domain import Fleet
from orderline_simulators.fleet.settings import FleetSettings
from orderline_simulators.fleet.state import DeviceStore
from orderline_simulators.fleet.streaming import TelemetryStreamer
from orderline_simulators.fleet.telemetry import TelemetryGenerator

log = get_logger("device-fleet")

SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["DeviceAgentService"].full_name


def build_spec(settings: FleetSettings, identity: CallerIdentity) -> ServerSpec:
    fleet = Fleet.create(settings.fleet_devices)
    fleet.inject(settings.fleet_faults)
    store = DeviceStore(settings.fleet_state_dir) if settings.fleet_state_dir else None
    # What the devices kept from before a restart wins over the faults given at start.
    restored = store.load_into(fleet) if store is not None else 0
    telemetry = TelemetryGenerator(settings.fleet_seed)
    api = DeviceAgentApi(
        fleet,
        telemetry,
        apply_delay_seconds=settings.fleet_apply_delay_ms / 1000,
        on_change=store.save if store is not None else lambda _device: None,
    )

    def register(server: grpc.aio.Server) -> None:
        agent_pb2_grpc.add_DeviceAgentServiceServicer_to_server(api, server)

    background: list[BackgroundJob] = []
    if settings.telemetry_target:
        streamer = TelemetryStreamer(
            fleet,
            telemetry,
            target=settings.telemetry_target,
            interval_seconds=settings.telemetry_interval_seconds,
            token=settings.service_token,
            tls=settings.tls_config(),
        )
        background.append(streamer.run)
    log.info(
        "fleet created",
        devices=len(fleet),
        faults=[f"{s.device_id}:{s.label}" for s in settings.fleet_faults],
        telemetry_target=settings.telemetry_target or None,
        telemetry_interval_seconds=settings.telemetry_interval_seconds,
        state_dir=str(settings.fleet_state_dir or "") or None,
        devices_restored=restored,
    )
    log_identity(identity, "device-fleet")
    return ServerSpec(
        name="device-fleet",
        host=settings.fleet_host,
        port=settings.fleet_port,
        service_names=(SERVICE_NAME,),
        register=register,
        grace_seconds=settings.shutdown_grace_seconds,
        background=background,
        tls=settings.tls_config(),
        # The fleet's answers hold no personal data (device ids, models, versions, faults,
        # counters; configuration settings are taken, never answered), so nothing is masked and
        # no call needs a role: the tests inject faults and reset devices (FactoryReset) without
        # a token. A token that is presented must still verify.
        interceptors=(CallerInterceptor(identity, (SERVICE_NAME,)),),
    )


async def run(settings: FleetSettings, identity: CallerIdentity) -> int:
    return await serve(build_spec(settings, identity))
