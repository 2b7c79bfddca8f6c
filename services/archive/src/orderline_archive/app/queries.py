"""Reading the archive: one dossier, pages of dossiers, one document streamed from the blob
store, verification of the whole chain, and the transparency log's checkpoints and proofs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace

from orderline_archive.adapters.repository import (
    DocumentRow,
    DossierFilter,
    DossierRepository,
    DossierRow,
)
from orderline_archive.app.log import (
    CheckpointSigner,
    ConsistencyProof,
    InclusionProof,
    LogReader,
    SignedCheckpoint,
)
from orderline_archive.app.ports import (
    CHUNK_BYTES,
    BlobCorrupted,
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
)
from orderline_archive.domain.chain import (
    ChainVerdict,
    ChainVerifier,
    SealedDossier,
    StoredDocument,
)
from orderline_archive.domain.export import build_export
from orderline_archive.domain.masking import masked_content, needs_masking
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
    Unavailable,
)
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.unit_of_work import UnitOfWorkFactory

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class DocumentUnreadable(Exception):
    """A sealed document whose bytes are missing from the blob store or no longer match its
    SHA-256: data loss, reported as such (DATA_LOSS) and never served."""

    def __init__(self, order_id: str, name: str, cause: BlobError) -> None:
        what = "is missing" if isinstance(cause, BlobNotFound) else "is damaged"
        super().__init__(f"document {name!r} of order {order_id!r} {what} in the blob store")
        self.reason = "DOCUMENT_MISSING" if isinstance(cause, BlobNotFound) else "DOCUMENT_DAMAGED"


def encode_dossier_token(after_sequence: int, filters: Mapping[str, object] | None = None) -> str:
    return encode_page_token(str(after_sequence), filters)


def decode_dossier_token(token: str, filters: Mapping[str, object] | None = None) -> int:
    """The sequence a page starts after; an empty token starts at the beginning. A token
    issued for other filters is refused (BadPageToken)."""
    if not token:
        return 0
    position = decode_page_token(token, filters)
    if not position.isdigit():
        raise BadPageToken("not a page token from ListDossiers")
    return int(position)


def filter_fingerprint(filters: DossierFilter) -> dict[str, object]:
    """What a page token is bound to."""
    return {
        "order_id": filters.order_id,
        "business_type": filters.business_type,
        "sealed_after": filters.sealed_after.isoformat() if filters.sealed_after else "",
        "sealed_before": filters.sealed_before.isoformat() if filters.sealed_before else "",
    }


@dataclass(frozen=True)
class DossierPage:
    dossiers: list[SealedDossier]
    next_page_token: str


@dataclass(frozen=True)
class OpenDocument:
    """A document about to stream: its metadata, and its bytes in chunks of at most
    CHUNK_BYTES, already verified (the first chunk was read before this was returned)."""

    name: str
    media_type: str
    sha256: str
    size_bytes: int
    chunks: AsyncIterator[bytes]


class ArchiveQueries:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DossierRepository],
        blobs: BlobStore,
        signer: CheckpointSigner | None = None,
    ) -> None:
        self.uow = uow
        self.blobs = blobs
        self.signer = signer

    async def checkpoint(self) -> SignedCheckpoint:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).checkpoint(self.signer)

    async def inclusion_proof(self, order_id: str, tree_size: int) -> InclusionProof:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).inclusion(order_id, tree_size)

    async def export(self, order_id: str, roles: frozenset[str] = frozenset({"auditor"})) -> bytes:
        """The dossier with its proof against a checkpoint signed now (one snapshot), its
        documents read from the blob store once the snapshot is taken; personal data withheld
        (masked) for roles below auditor, purged documents withheld."""
        async with self.uow(read_only=True) as uow:
            reader = LogReader(uow.repos)
            signed = await reader.checkpoint(self.signer)
            row = await uow.repos.get_by_order(order_id)
            if row is None:
                raise NotFound("dossier", order_id)
            found = await reader.inclusion(order_id, signed.size)
        dossier = _masked(await self._with_content(row), roles)
        return build_export(
            dossier, leaf_index=found.leaf_index, proof=found.proof, signed_note=signed.note
        )

    async def document(
        self, order_id: str, name: str, roles: frozenset[str] = frozenset({"auditor"})
    ) -> OpenDocument:
        """One document, read by its row alone (not the whole dossier), its bytes streamed from
        the blob store. A document with personal data streams to auditors only (GetDossier
        shows it masked to others); a purged one to nobody."""
        async with self.uow(read_only=True) as uow:
            row = await uow.repos.document(order_id, name)
        if row is None:
            raise NotFound("document", f"{order_id}/{name}")
        if row.purged:
            raise FailedPrecondition(
                f"document {name!r} of {order_id!r} was purged past its retention",
                reason="PURGED",
                violations=[PreconditionViolation("RETENTION", f"{order_id}/{name}", "purged")],
            )
        if needs_masking(name, roles):
            raise PermissionDenied(
                f"{name} holds personal data: auditors only (GetDossier shows it masked)"
            )
        if row.inline is not None:
            chunks: AsyncIterator[bytes] = _chunked(row.inline)
        else:
            chunks = self.blobs.open(row.sha256)
        # Read the first chunk now: a missing or damaged blob fails the call before any
        # response is sent, rather than as a broken stream after the metadata.
        first = await _first(chunks, order_id, name)
        return OpenDocument(
            name=row.name,
            media_type=row.media_type,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            chunks=_resumed(first, chunks, order_id, name),
        )

    async def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).consistency(first, second)

    async def get_dossier(
        self, order_id: str, roles: frozenset[str] = frozenset({"auditor"})
    ) -> tuple[SealedDossier, list[SealedDossier]]:
        """The record of that key (an order's dossier, or any record by its key) and, for a
        dossier, its addenda; personal data masked for roles below auditor."""
        async with self.uow(read_only=True) as uow:
            row = await uow.repos.get_by_order(order_id)
            addenda = (
                await uow.repos.addenda(order_id)
                if row is not None and row.kind == "dossier"
                else []
            )
        if row is None:
            raise NotFound("dossier", order_id)
        dossier = _masked(await self._with_content(row), roles)
        return dossier, [_masked(await self._with_content(a), roles) for a in addenda]

    async def list_dossiers(
        self, page_size: int, after_sequence: int, filters: DossierFilter | None = None
    ) -> DossierPage:
        """Dossiers in chain order, documents without their content (GetDocument has it)."""
        filters = filters or DossierFilter()
        size = page_size or DEFAULT_PAGE_SIZE
        async with self.uow(read_only=True) as uow:
            # One more than asked, to know whether another page follows.
            rows = await uow.repos.page(
                after_sequence, size + 1, with_content=False, filters=filters
            )
        page, more = rows[:size], len(rows) > size
        token = (
            encode_dossier_token(page[-1].sequence, filter_fingerprint(filters))
            if more and page
            else ""
        )
        return DossierPage([_without_content(r) for r in page], token)

    async def verify_chain(self) -> ChainVerdict:
        """Recomputes every hash in sequence order, up to the head read first (dossiers sealed
        meanwhile are left for the next check). Every document is read back from the blob
        store, verified: a missing or damaged blob breaks its dossier."""
        verifier = ChainVerifier()
        async with self.uow(read_only=True) as uow:
            repo = uow.repos
            head = await repo.head()
            async with aclosing(repo.chain()) as chain:
                async for row in chain:
                    if row.sequence > head.sequence:
                        break
                    try:
                        dossier = await self._with_content(row)
                    except DocumentUnreadable as exc:
                        verifier.feed(_without_content(row), unreadable=str(exc))
                        continue
                    verifier.feed(dossier)
            verifier.expect_head(head.sequence, head.content_hash, head.dossier_id)
        return verifier.verdict()

    async def _with_content(self, row: DossierRow) -> SealedDossier:
        if row.purged_at is not None:  # past retention and purged: names and hashes only
            return _without_content(row, withheld="purged")
        documents = []
        for doc in row.documents:
            content = doc.inline if doc.inline is not None else await self._read(row, doc)
            documents.append(StoredDocument(doc.name, doc.media_type, doc.sha256, content))
        return _dossier(row, documents)

    async def _read(self, row: DossierRow, doc: DocumentRow) -> bytes:
        try:
            return await self.blobs.read(doc.sha256)
        except (BlobNotFound, BlobCorrupted) as exc:
            raise DocumentUnreadable(row.order_id, doc.name, exc) from exc
        except BlobStoreUnavailable as exc:
            raise Unavailable(f"the blob store did not answer: {exc}") from exc


def _dossier(row: DossierRow, documents: list[StoredDocument]) -> SealedDossier:
    return SealedDossier(
        id=row.id,
        order_id=row.order_id,
        sequence=row.sequence,
        previous_hash=row.previous_hash,
        content_hash=row.content_hash,
        documents=tuple(documents),
        sealed_at=row.sealed_at,
        business_type=row.business_type,
        kind=row.kind,
        subject=row.subject,
        retain_until=row.retain_until,
        purged_at=row.purged_at,
    )


def _without_content(row: DossierRow, withheld: str = "") -> SealedDossier:
    return _dossier(
        row,
        [
            StoredDocument(
                d.name, d.media_type, d.sha256, b"", size_bytes=d.size_bytes, withheld=withheld
            )
            for d in row.documents
        ],
    )


def _masked(dossier: SealedDossier, roles: frozenset[str]) -> SealedDossier:
    """Personal data masked for roles below auditor (domain/masking.py)."""
    if not any(needs_masking(d.name, roles) and not d.withheld for d in dossier.documents):
        return dossier
    documents = tuple(
        replace(d, content=masked_content(d.content), withheld="masked", size_bytes=d.size)
        if needs_masking(d.name, roles) and not d.withheld
        else d
        for d in dossier.documents
    )
    return replace(dossier, documents=documents)


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES]


async def _first(chunks: AsyncIterator[bytes], order_id: str, name: str) -> bytes:
    try:
        return await anext(chunks, b"")
    except (BlobNotFound, BlobCorrupted) as exc:
        raise DocumentUnreadable(order_id, name, exc) from exc
    except BlobStoreUnavailable as exc:
        raise Unavailable(f"the blob store did not answer: {exc}") from exc


async def _resumed(
    first: bytes, rest: AsyncIterator[bytes], order_id: str, name: str
) -> AsyncIterator[bytes]:
    if first:
        yield first
    try:
        async for chunk in rest:
            yield chunk
    except (BlobNotFound, BlobCorrupted) as exc:
        raise DocumentUnreadable(order_id, name, exc) from exc
