"""ArchiveService: dossiers, the chain check, and the transparency log's checkpoints and proofs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_archive.app.queries import MAX_PAGE_SIZE, ArchiveQueries, decode_dossier_token
from orderline_archive.domain.chain import SealedDossier
from orderline_runtime.errors import Violations
from orderline_runtime.paging import BadPageToken

# A document streams in pieces this size: well under gRPC's 4 MiB message limit.
CHUNK_BYTES = 64 * 1024


class ArchiveApi(archive_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, queries: ArchiveQueries) -> None:
        self.queries = queries

    async def GetDossier(
        self, request: archive_pb2.GetDossierRequest, context: Any
    ) -> archive_pb2.GetDossierResponse:
        problems = Violations()
        if not request.order_id.strip():
            problems.add("order_id", "required")
        problems.raise_if_any()
        dossier = await self.queries.get_dossier(request.order_id)
        return archive_pb2.GetDossierResponse(dossier=to_message(dossier))

    async def ListDossiers(
        self, request: archive_pb2.ListDossiersRequest, context: Any
    ) -> archive_pb2.ListDossiersResponse:
        problems = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE} (0 means 50)")
        after = 0
        try:
            after = decode_dossier_token(request.page_token)
        except BadPageToken as exc:
            problems.add("page_token", str(exc))
        problems.raise_if_any()
        page = await self.queries.list_dossiers(request.page_size, after)
        return archive_pb2.ListDossiersResponse(
            dossiers=[to_message(d) for d in page.dossiers], next_page_token=page.next_page_token
        )

    async def VerifyChain(
        self, request: archive_pb2.VerifyChainRequest, context: Any
    ) -> archive_pb2.VerifyChainResponse:
        verdict = await self.queries.verify_chain()
        return archive_pb2.VerifyChainResponse(
            valid=verdict.valid,
            records_checked=verdict.records_checked,
            first_broken_dossier_id=verdict.first_broken_dossier_id,
        )

    async def GetCheckpoint(
        self, request: archive_pb2.GetCheckpointRequest, context: Any
    ) -> archive_pb2.GetCheckpointResponse:
        signed = await self.queries.checkpoint()
        return archive_pb2.GetCheckpointResponse(
            signed_note=signed.note,
            tree_size=signed.size,
            root_hash=signed.root,
            verifier_key=signed.verifier_key,
        )

    async def GetInclusionProof(
        self, request: archive_pb2.GetInclusionProofRequest, context: Any
    ) -> archive_pb2.GetInclusionProofResponse:
        problems = Violations()
        if not request.order_id.strip():
            problems.add("order_id", "required")
        if request.tree_size < 0:
            problems.add("tree_size", "must not be negative (0 means the current size)")
        problems.raise_if_any()
        found = await self.queries.inclusion_proof(request.order_id, request.tree_size)
        return archive_pb2.GetInclusionProofResponse(
            leaf_index=found.leaf_index,
            tree_size=found.tree_size,
            leaf_data=found.leaf_data,
            proof=found.proof,
            root_hash=found.root,
        )

    async def GetConsistencyProof(
        self, request: archive_pb2.GetConsistencyProofRequest, context: Any
    ) -> archive_pb2.GetConsistencyProofResponse:
        problems = Violations()
        if request.first_tree_size <= 0:
            problems.add("first_tree_size", "must be at least 1")
        if request.second_tree_size < 0:
            problems.add("second_tree_size", "must not be negative (0 means the current size)")
        problems.raise_if_any()
        found = await self.queries.consistency_proof(
            request.first_tree_size, request.second_tree_size
        )
        return archive_pb2.GetConsistencyProofResponse(
            first_tree_size=found.first_size,
            second_tree_size=found.second_size,
            proof=found.proof,
            first_root_hash=found.first_root,
            second_root_hash=found.second_root,
        )

    async def ExportDossier(
        self, request: archive_pb2.ExportDossierRequest, context: Any
    ) -> archive_pb2.ExportDossierResponse:
        problems = Violations()
        if not request.order_id.strip():
            problems.add("order_id", "required")
        problems.raise_if_any()
        content = await self.queries.export(request.order_id)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.order_id)
        return archive_pb2.ExportDossierResponse(
            file_name=f"dossier-{safe[:80]}.json", content=content
        )

    async def GetDocument(
        self, request: archive_pb2.GetDocumentRequest, context: Any
    ) -> AsyncIterator[archive_pb2.GetDocumentResponse]:
        problems = Violations()
        if not request.order_id.strip():
            problems.add("order_id", "required")
        if not request.name.strip():
            problems.add("name", "required")
        problems.raise_if_any()
        doc = await self.queries.document(request.order_id, request.name)
        content = doc.content
        yield archive_pb2.GetDocumentResponse(
            name=doc.name,
            media_type=doc.media_type,
            sha256=doc.sha256,
            size_bytes=len(content),
            data=content[:CHUNK_BYTES],
        )
        for start in range(CHUNK_BYTES, len(content), CHUNK_BYTES):
            yield archive_pb2.GetDocumentResponse(data=content[start : start + CHUNK_BYTES])


def to_message(dossier: SealedDossier) -> archive_pb2.Dossier:
    message = archive_pb2.Dossier(
        id=dossier.id,
        order_id=dossier.order_id,
        sequence=dossier.sequence,
        content_hash=dossier.content_hash,
        previous_hash=dossier.previous_hash,
        documents=[
            archive_pb2.ArchivedDocument(
                name=d.name, media_type=d.media_type, sha256=d.sha256, content=d.content
            )
            for d in dossier.documents
        ],
    )
    if dossier.sealed_at is not None:
        sealed_at = dossier.sealed_at
        if sealed_at.tzinfo is None:  # SQLite returns naive datetimes; we store UTC
            sealed_at = sealed_at.replace(tzinfo=UTC)
        message.sealed_at.FromDatetime(sealed_at)
    return message
