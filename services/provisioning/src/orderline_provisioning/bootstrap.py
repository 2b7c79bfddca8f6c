"""The composition root: settings, database, peers, worker, consumers and servicers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_provisioning.adapters.peers import (
    DeviceAgentClient,
    DeviceHealthClient,
    GatewayClient,
    IntakeClient,
)
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.adapters.tables import metadata
from orderline_provisioning.api.servicers import ProvisioningApi, VoucherApi
from orderline_provisioning.app.certifications import Certifications
from orderline_provisioning.app.confirmation import CustomerConfirmations
from orderline_provisioning.app.device_events import DeviceEvents
from orderline_provisioning.app.fallout import FalloutDesk
from orderline_provisioning.app.handlers import OrderEvents
from orderline_provisioning.app.ports import Peers
from orderline_provisioning.app.queries import JobQueries
from orderline_provisioning.app.steps import StepPolicy, StepRunner
from orderline_provisioning.app.voucher_keys import VoucherKeys
from orderline_provisioning.app.worker import JobWorker
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.settings import ProvisioningSettings
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE = "provisioning"


ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = (
    "orderline.provisioning.v1.ProvisioningService",
    "orderline.provisioning.v1.VoucherService",
)


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


KEY_SETTING = "ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"


def voucher_keys(settings: ProvisioningSettings) -> VoucherKeys:
    """The voucher keys, read before anything starts. Without a key the service refuses to
    start (run_service prints this one line and exits 2) rather than take orders it could only
    finish with an unsigned voucher or fail at activation, after configuring the device: the
    approved orders wait in JetStream and go through once the key is there."""
    if settings.provisioning_voucher_key_file is None:
        raise ValueError(
            f"{KEY_SETTING} is not set: provisioning signs every activation voucher and issues "
            "none unsigned; point it at an Ed25519 private key (PEM PKCS#8), e.g. from "
            "`openssl genpkey -algorithm ed25519`"
        )
    return VoucherKeys.from_files(
        settings.provisioning_voucher_key_file, settings.provisioning_voucher_public_keys_file
    )


def build(settings: ProvisioningSettings | None = None) -> Service[JobRepository]:
    settings = settings or load_settings(ProvisioningSettings, SERVICE)
    service = Service(
        settings,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=JobRepository,
    )
    if service.identity.problem is not None:
        # Never served (run_service refuses it with the identity line): an operator who set
        # up neither identity nor keys hears about identity first, as from every service.
        return service
    keys = voucher_keys(settings)
    opts = service.call_options
    health = DeviceHealthClient(settings.device_monitor_address, opts)
    agent = DeviceAgentClient(settings.device_agent_address, opts)
    intake = IntakeClient(settings.intake_address, opts)
    gateway = GatewayClient(settings.gateway_address, opts)
    runner = StepRunner(
        Peers(health=health, agent=agent, customers=intake, gateway=gateway),
        StepPolicy(
            retry=RetryPolicy(
                initial_seconds=settings.retry_initial_seconds,
                max_seconds=settings.retry_max_seconds,
            ),
            prechecks_wait=timedelta(seconds=settings.prechecks_wait_seconds),
            sms_failures_before_voice=settings.sms_failures_before_voice,
            notify_max_attempts=settings.notify_max_attempts,
            delivery_wait=timedelta(seconds=settings.notify_delivery_wait_seconds),
        ),
        signer=keys,
        clock=service.clock,
    )
    worker = JobWorker(
        service.uow,
        runner,
        service.clock,
        operator=settings.provisioning_operator,
        concurrency=settings.worker_concurrency,
        poll_seconds=settings.worker_poll_seconds,
        lease_seconds=settings.job_lease_seconds,
    )

    certifications = Certifications(service.uow, service.clock)

    async def run_worker(stop: asyncio.Event) -> None:
        try:
            seed = settings.certification_seed()
            if seed:
                # Before the first job is taken up, so no job meets an unseeded checklist.
                await certifications.seed(seed)
            await worker.run(stop)
        finally:
            for client in (health, agent, intake, gateway):
                await client.close()

    orders = OrderEvents(service.clock, on_job_created=worker.notify)
    queries = JobQueries(service.uow, keys)
    service.add_grpc_service(
        provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server,
        ProvisioningApi(
            queries,
            certifications,
            FalloutDesk(service.uow, runner, service.clock, on_runnable=worker.notify),
            service.clock,
            CustomerConfirmations(service.uow, service.clock),
        ),
        "orderline.provisioning.v1.ProvisioningService",
    )
    service.add_grpc_service(
        provisioning_pb2_grpc.add_VoucherServiceServicer_to_server,
        VoucherApi(queries),
        "orderline.provisioning.v1.VoucherService",
    )
    devices = DeviceEvents(service.clock, on_runnable=worker.notify)
    service.consume([*orders.handlers(), *devices.handlers()])
    service.add_task("job-worker", run_worker)
    return service
