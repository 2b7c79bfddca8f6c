"""The archive in-process on real NATS and a real database (SQLite and PostgreSQL), fed with
`order.completed` events published as intake's relay would, and called over real gRPC: the
harness the integration tests share (fixtures registered by conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from nats.aio.client import Client
from nats.js import JetStreamContext

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.bootstrap import build
from orderline_archive.domain.checkpoint import verifier_key
from orderline_archive.settings import ArchiveSettings
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.waiting import eventually
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.service import Service

T = TypeVar("T")


class RunningArchive:
    def __init__(
        self,
        service: Service[DossierRepository],
        task: asyncio.Task[None],
        address: str,
        verifier_key: str = "",
        blob_dir: Path | None = None,
    ) -> None:
        self.service = service
        self.task = task
        self.address = address
        # The local blob store's directory, where the documents' bytes are.
        self.blob_dir = blob_dir
        # What an auditor keeps outside the archive: the checkpoint signer's public key.
        self.verifier_key = verifier_key

    async def stop(self) -> None:
        self.service.stop_event.set()
        await asyncio.wait_for(self.task, 30)


async def start_archive(
    db_url: str,
    nats_url: str,
    trace_dir: Path,
    blob_dir: Path | None = None,
    clock: Clock = system_clock,
    tokens_file: Path | None = None,
) -> RunningArchive:
    """`blob_dir` defaults to one beside trace_dir: replicas given the same trace_dir share
    it, as replicas on one database share a volume. `clock`: sealing times and retention."""
    port = free_port()
    blob_dir = blob_dir or trace_dir.parent / "blobs"
    key = Ed25519PrivateKey.generate()
    key_file = trace_dir.parent / f"archive-signing-key-{port}.pem"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    service = build(
        ArchiveSettings(
            service_name="archive",
            grpc_port=port,
            database_url=db_url,
            nats_url=nats_url,
            trace_dir=trace_dir,
            shutdown_grace_seconds=2,
            archive_signing_key_file=key_file,
            archive_log_origin="test.orderline/archive",
            archive_blob_dir=blob_dir,
            auth_tokens_file=tokens_file,
        ),
        clock=clock,
    )
    task = asyncio.create_task(service.run())
    address = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            if task.done():
                task.result()  # surfaces a crash at start
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return int(reply.status)
            except grpc.aio.AioRpcError:
                return -1

        await eventually(status, lambda s: s == health_pb2.HealthCheckResponse.SERVING, 30)
    vkey = verifier_key("test.orderline/archive", key.public_key())
    return RunningArchive(service, task, address, vkey, blob_dir)


@pytest_asyncio.fixture
async def archive(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[RunningArchive]:
    running = await start_archive(db_url, nats_server.url, tmp_path / "traces")
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def stub(archive: RunningArchive) -> AsyncIterator[archive_pb2_grpc.ArchiveServiceStub]:
    async with grpc.aio.insecure_channel(archive.address) as channel:
        yield archive_pb2_grpc.ArchiveServiceStub(channel)


class Producer:
    """Publishes events as their owning service's outbox relay would."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    async def publish(self, env: envelope_pb2.Envelope) -> None:
        await self.js.publish(
            f"orderline.{env.type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )

    async def emit(
        self, event_type: str, payload: Message, *, producer: str = "intake", **kw: Any
    ) -> envelope_pb2.Envelope:
        env = build_envelope(event_type, payload, producer=producer, **kw)
        await self.publish(env)
        return env


@pytest_asyncio.fixture
async def producer(nats_server: NatsServer) -> AsyncIterator[Producer]:
    nc = await nats.connect(nats_server.url)
    yield Producer(nc)
    await nc.drain()


def auth(role: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer dev-{role}"),)


# --- helpers ------------------------------------------------------------------------------


def completed(
    order_id: str,
    voucher_id: str = "",
    milestones: tuple[str, ...] = ("review_approved",),
) -> order_events_pb2.OrderCompleted:
    """A completion. Provisioning's milestones (service_activated, customer_notified, ...) make
    the archive wait for provisioning's events of the same names before it seals: name them
    only when the test publishes those events too."""
    event = order_events_pb2.OrderCompleted(
        order_id=order_id,
        business_type="broadband_install",
        device_id="CPE-0001",
        voucher_id=voucher_id or f"AV-{order_id}",
        milestones=[order_pb2.Milestone(name=name) for name in milestones],
        history=[
            order_pb2.StateChange(
                from_state=order_pb2.ORDER_STATE_ACKNOWLEDGED,
                to_state=order_pb2.ORDER_STATE_IN_PROGRESS,
                actor="auto-review",
                reason_code="APPROVED",
            ),
            order_pb2.StateChange(
                from_state=order_pb2.ORDER_STATE_IN_PROGRESS,
                to_state=order_pb2.ORDER_STATE_COMPLETED,
                actor="provisioning",
                reason_code="CUSTOMER_NOTIFIED",
            ),
        ],
    )
    event.created_at.GetCurrentTime()
    for m in event.milestones:
        m.reached_at.GetCurrentTime()
    return event


async def emit_completed(producer: Producer, order_id: str) -> envelope_pb2.Envelope:
    return await producer.emit("order.completed", completed(order_id), order_id=order_id)


async def list_all(stub: archive_pb2_grpc.ArchiveServiceStub) -> list[archive_pb2.Dossier]:
    reply = await stub.ListDossiers(archive_pb2.ListDossiersRequest(page_size=500), metadata=CLERK)
    return list(reply.dossiers)


async def consumer_caught_up(producer: Producer, published: int) -> None:
    """Waits until the archive's ORDER consumer has acknowledged every published event."""

    async def info() -> Any:
        return await producer.js.consumer_info("ORDER", "archive")

    await eventually(
        info,
        lambda i: i.ack_floor.stream_seq >= published and i.num_ack_pending == 0,
    )


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


CLERK = auth("clerk")
