"""Composition root: wires the archive's database, consumer, servicer and policy."""

from __future__ import annotations

from pathlib import Path

from orderline.archive.v1 import archive_pb2_grpc
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.adapters.tables import metadata
from orderline_archive.api.archive import ArchiveApi
from orderline_archive.app.log import Signer
from orderline_archive.app.queries import ArchiveQueries
from orderline_archive.app.sealing import DossierSealer
from orderline_archive.settings import ArchiveSettings
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

SERVICE = "orderline.archive.v1.ArchiveService"
READERS = frozenset({"clerk", "auditor", "manager", "service"})

# Roles per RPC, from docs/architecture.md (deny by default).
POLICY = {
    f"/{SERVICE}/GetDossier": READERS,
    f"/{SERVICE}/ListDossiers": READERS,
    f"/{SERVICE}/VerifyChain": READERS,
    f"/{SERVICE}/GetCheckpoint": READERS,
    f"/{SERVICE}/GetInclusionProof": READERS,
    f"/{SERVICE}/GetConsistencyProof": READERS,
    f"/{SERVICE}/ExportDossier": READERS,
}


def build(settings: ArchiveSettings | None = None) -> Service[DossierRepository]:
    settings = settings or load_settings(ArchiveSettings, "archive")
    service = Service(
        settings,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=POLICY,
        repositories=DossierRepository,
    )
    signer = None
    if settings.archive_signing_key_file is not None:
        signer = Signer.from_file(settings.archive_log_origin, settings.archive_signing_key_file)
    service.add_grpc_service(
        archive_pb2_grpc.add_ArchiveServiceServicer_to_server,
        ArchiveApi(ArchiveQueries(service.uow, signer)),
        SERVICE,
    )
    service.consume(DossierSealer(service.clock).handlers())
    return service
