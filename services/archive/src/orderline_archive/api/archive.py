"""ArchiveService: dossiers, the chain check, and the transparency log's checkpoints and proofs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.rpc import error_details_pb2, status_pb2

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_archive.adapters.repository import DossierFilter
from orderline_archive.app.orphans import MAX_LIMIT as MAX_ORPHANS
from orderline_archive.app.orphans import OrphanCollector
from orderline_archive.app.purge import MAX_LIMIT as MAX_PURGE
from orderline_archive.app.purge import Purger
from orderline_archive.app.queries import (
    MAX_PAGE_SIZE,
    ArchiveQueries,
    DocumentUnreadable,
    decode_dossier_token,
    filter_fingerprint,
)
from orderline_archive.domain.chain import SealedDossier
from orderline_runtime.errors import Violations
from orderline_runtime.logs import get_logger
from orderline_runtime.paging import BadPageToken
from orderline_runtime.rpc.auth import current_principal
from orderline_runtime.rpc.status import DOMAIN
from orderline_runtime.rpc.timestamps import optional_time

T = TypeVar("T")
log = get_logger(__name__)

# The catalogue's keys are lowercase words joined by underscores; the column holds 64.
BUSINESS_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


_PURGE_REQUEST_ID = re.compile(r"^PR-[0-9a-f-]{36}$")


class ArchiveApi(archive_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, queries: ArchiveQueries, purger: Purger, orphans: OrphanCollector) -> None:
        self.queries = queries
        self.purger = purger
        self.orphans = orphans

    async def GetDossier(
        self, request: archive_pb2.GetDossierRequest, context: Any
    ) -> archive_pb2.GetDossierResponse:
        problems = Violations()
        if not request.order_id.strip():
            problems.add("order_id", "required")
        problems.raise_if_any()
        dossier, addenda = await _or_data_loss(
            context, self.queries.get_dossier(request.order_id, current_principal().roles)
        )
        return archive_pb2.GetDossierResponse(
            dossier=to_message(dossier), addenda=[to_message(a) for a in addenda]
        )

    async def ListDossiers(
        self, request: archive_pb2.ListDossiersRequest, context: Any
    ) -> archive_pb2.ListDossiersResponse:
        problems = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE} (0 means 50)")
        if len(request.order_id) > 64 or request.order_id != request.order_id.strip():
            problems.add("order_id", "at most 64 characters, without surrounding spaces")
        if request.business_type and not BUSINESS_TYPE.match(request.business_type):
            problems.add(
                "business_type", "a catalogue key: lowercase letters, digits and '_', e.g. iptv"
            )
        after_time = optional_time(request, "sealed_after", problems)
        before_time = optional_time(request, "sealed_before", problems)
        if after_time and before_time and after_time >= before_time:
            problems.add("sealed_before", "must be later than sealed_after")
        filters = DossierFilter(
            order_id=request.order_id,
            business_type=request.business_type,
            sealed_after=after_time,
            sealed_before=before_time,
        )
        after = 0
        try:
            after = decode_dossier_token(request.page_token, filter_fingerprint(filters))
        except BadPageToken as exc:
            problems.add("page_token", str(exc))
        problems.raise_if_any()
        page = await self.queries.list_dossiers(request.page_size, after, filters)
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
        content = await _or_data_loss(
            context, self.queries.export(request.order_id, current_principal().roles)
        )
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
        doc = await _or_data_loss(
            context,
            self.queries.document(request.order_id, request.name, current_principal().roles),
        )
        first = True
        try:
            async for chunk in doc.chunks:
                if first:
                    first = False
                    yield archive_pb2.GetDocumentResponse(
                        name=doc.name,
                        media_type=doc.media_type,
                        sha256=doc.sha256,
                        size_bytes=doc.size_bytes,
                        data=chunk,
                    )
                else:
                    yield archive_pb2.GetDocumentResponse(data=chunk)
        except DocumentUnreadable as exc:
            await _abort_data_loss(context, exc)
        if first:  # an empty document: its metadata alone
            yield archive_pb2.GetDocumentResponse(
                name=doc.name, media_type=doc.media_type, sha256=doc.sha256, size_bytes=0
            )

    async def PurgeExpired(
        self, request: archive_pb2.PurgeExpiredRequest, context: Any
    ) -> archive_pb2.PurgeExpiredResponse:
        problems = Violations()
        if not 0 <= request.limit <= MAX_PURGE:
            problems.add("limit", f"must be between 0 and {MAX_PURGE} (0 means 100)")
        approve = request.approve_request_id
        if approve and not _PURGE_REQUEST_ID.match(approve):
            problems.add("approve_request_id", "must be a purge request id (PR-...)")
        if approve and (request.dry_run or request.limit):
            problems.add(
                "approve_request_id", "an approval purges what the request lists: no dry_run, limit"
            )
        problems.raise_if_any()
        actor = current_principal().subject
        if approve:
            result = await self.purger.approve(approve, actor=actor)
        else:
            result = await self.purger.purge(
                limit=request.limit, dry_run=request.dry_run, actor=actor
            )
        response = archive_pb2.PurgeExpiredResponse(
            more=result.more,
            purge_request_id=result.request_id,
            awaiting_approval=result.awaiting_approval,
            requested_by=result.requested_by,
            approved_by=result.approved_by,
        )
        for p in result.purged:
            item = response.purged.add(
                record_id=p.record_id,
                key=p.key,
                kind=p.kind,
                tombstone_key=p.tombstone_key,
                tombstone_sequence=p.tombstone_sequence,
            )
            if p.retain_until is not None:
                item.retain_until.FromDatetime(_utc(p.retain_until))
        return response

    async def CollectOrphanBlobs(
        self, request: archive_pb2.CollectOrphanBlobsRequest, context: Any
    ) -> archive_pb2.CollectOrphanBlobsResponse:
        problems = Violations()
        if not 0 <= request.limit <= MAX_ORPHANS:
            problems.add("limit", f"must be between 0 and {MAX_ORPHANS} (0 means 1000)")
        problems.raise_if_any()
        sweep = await self.orphans.collect(delete=request.delete, limit=request.limit)
        if sweep.deleted and sweep.orphans:
            log.warning(
                "orphan blobs deleted by an auditor",
                actor=current_principal().subject,
                blobs=len(sweep.orphans),
                bytes=sweep.orphan_bytes,
            )
        response = archive_pb2.CollectOrphanBlobsResponse(
            deleted=sweep.deleted,
            more=sweep.more,
            blobs_examined=sweep.examined,
            referenced=sweep.referenced,
            within_grace=sweep.within_grace,
            put_back=sweep.put_back,
            orphan_bytes=sweep.orphan_bytes,
            temporary_files_removed=sweep.temporaries_removed,
            grace_seconds=sweep.grace_seconds,
        )
        for blob in sweep.orphans:
            item = response.orphans.add(sha256=blob.digest, size_bytes=blob.size_bytes)
            item.stored_at.FromDatetime(datetime.fromtimestamp(blob.stored_at, UTC))
        return response


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _or_data_loss(context: Any, call: Awaitable[T]) -> T:
    try:
        return await call
    except DocumentUnreadable as exc:
        await _abort_data_loss(context, exc)


async def _abort_data_loss(context: Any, exc: DocumentUnreadable) -> NoReturn:
    """DATA_LOSS (which the shared error mapping has no exception for): a sealed document's
    bytes are gone or damaged. The caller can do nothing but tell an operator."""
    info = AnyMessage()
    info.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN))
    status = status_pb2.Status(
        code=grpc.StatusCode.DATA_LOSS.value[0], message=str(exc), details=[info]
    )
    await context.abort(
        grpc.StatusCode.DATA_LOSS,
        str(exc),
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )
    raise AssertionError("unreachable")  # abort raises


def to_message(dossier: SealedDossier) -> archive_pb2.Dossier:
    message = archive_pb2.Dossier(
        id=dossier.id,
        order_id=dossier.order_id,
        sequence=dossier.sequence,
        content_hash=dossier.content_hash,
        previous_hash=dossier.previous_hash,
        documents=[
            archive_pb2.ArchivedDocument(
                name=d.name,
                media_type=d.media_type,
                sha256=d.sha256,
                content=d.content,
                size_bytes=d.size,
                masked=d.withheld == "masked",
                purged=d.withheld == "purged",
            )
            for d in dossier.documents
        ],
        business_type=dossier.business_type,
        kind=dossier.kind,
        subject=dossier.subject,
    )
    if dossier.retain_until is not None:
        message.retain_until.FromDatetime(_utc(dossier.retain_until))
    if dossier.purged_at is not None:
        message.purged_at.FromDatetime(_utc(dossier.purged_at))
    if dossier.sealed_at is not None:
        sealed_at = dossier.sealed_at
        if sealed_at.tzinfo is None:  # SQLite returns naive datetimes; we store UTC
            sealed_at = sealed_at.replace(tzinfo=UTC)
        message.sealed_at.FromDatetime(sealed_at)
    return message
