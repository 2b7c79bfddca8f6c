"""Composition root: wires the archive's database, consumer, servicer and policy."""

from __future__ import annotations

from pathlib import Path

from orderline.archive.v1 import archive_pb2_grpc
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.adapters.tables import metadata
from orderline_archive.api.archive import ArchiveApi
from orderline_archive.app.orphans import OrphanCollector
from orderline_archive.app.ports import BlobStore
from orderline_archive.app.purge import Purger
from orderline_archive.app.queries import ArchiveQueries
from orderline_archive.app.sealing import DossierSealer
from orderline_archive.settings import ArchiveSettings
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE = "orderline.archive.v1.ArchiveService"


ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = ("orderline.archive.v1.ArchiveService",)


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


def build(
    settings: ArchiveSettings | None = None, clock: Clock = system_clock
) -> Service[DossierRepository]:
    """The service; `clock` (sealing times, retention) is injected by tests."""
    settings = settings or load_settings(ArchiveSettings, "archive")
    service = Service(
        settings,
        clock=clock,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=DossierRepository,
    )
    signer = None
    if settings.archive_signing_key_file is not None:
        from orderline_archive.app.signing import Signer

        signer = Signer.from_file(settings.archive_log_origin, settings.archive_signing_key_file)
    blobs = blob_store(settings)
    service.add_grpc_service(
        archive_pb2_grpc.add_ArchiveServiceServicer_to_server,
        ArchiveApi(
            ArchiveQueries(service.uow, blobs, signer),
            Purger(service.uow, blobs, service.clock),
            OrphanCollector(service.uow, blobs, settings.archive_orphan_grace_seconds),
        ),
        SERVICE,
    )
    sealer = DossierSealer(service.clock, blobs, service.uow)
    # The archive is off an order's critical path (it seals after completion): waiting 50 ms
    # for more events lets one transaction keep several (docs/performance.md).
    service.consume(sealer.handlers(), linger_seconds=0.05)
    # Completions that waited too long for their provisioning events (app/sealing.py).
    service.add_task("seal-overdue", sealer.sweep)
    return service


def blob_store(settings: ArchiveSettings) -> BlobStore:
    """The configured store of documents' bytes (ORDERLINE_ARCHIVE_BLOB_STORE)."""
    if settings.archive_blob_store == "s3":
        from orderline_archive.adapters.blobs_s3 import Credentials, S3BlobStore

        assert settings.archive_s3_secret_key_file is not None  # checked by the settings
        secret = settings.archive_s3_secret_key_file.read_text().strip()
        return S3BlobStore(
            endpoint=settings.archive_s3_endpoint,
            bucket=settings.archive_s3_bucket,
            region=settings.archive_s3_region,
            credentials=Credentials(settings.archive_s3_access_key_id, secret),
        )
    from orderline_archive.adapters.blobs_local import LocalBlobStore

    return LocalBlobStore(settings.resolved_blob_dir())
