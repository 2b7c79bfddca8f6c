"""Reading the archive: one dossier, pages of dossiers, verification of the whole chain, and
the transparency log's checkpoints and proofs."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass

from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.app.log import (
    CheckpointSigner,
    ConsistencyProof,
    InclusionProof,
    LogReader,
    SignedCheckpoint,
)
from orderline_archive.domain.chain import (
    ChainVerdict,
    ChainVerifier,
    SealedDossier,
    StoredDocument,
)
from orderline_archive.domain.export import build_export
from orderline_runtime.errors import NotFound
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.unit_of_work import UnitOfWorkFactory

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def encode_dossier_token(after_sequence: int) -> str:
    return encode_page_token(str(after_sequence))


def decode_dossier_token(token: str) -> int:
    """The sequence a page starts after; an empty token starts at the beginning."""
    if not token:
        return 0
    position = decode_page_token(token)
    if not position.isdigit():
        raise BadPageToken("not a page token from ListDossiers")
    return int(position)


@dataclass(frozen=True)
class DossierPage:
    dossiers: list[SealedDossier]
    next_page_token: str


class ArchiveQueries:
    def __init__(
        self, uow: UnitOfWorkFactory[DossierRepository], signer: CheckpointSigner | None = None
    ) -> None:
        self.uow = uow
        self.signer = signer

    async def checkpoint(self) -> SignedCheckpoint:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).checkpoint(self.signer)

    async def inclusion_proof(self, order_id: str, tree_size: int) -> InclusionProof:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).inclusion(order_id, tree_size)

    async def export(self, order_id: str) -> bytes:
        """The dossier with its proof against a checkpoint signed now (one snapshot)."""
        async with self.uow(read_only=True) as uow:
            reader = LogReader(uow.repos)
            signed = await reader.checkpoint(self.signer)
            dossier = await uow.repos.get_by_order(order_id)
            if dossier is None:
                raise NotFound("dossier", order_id)
            found = await reader.inclusion(order_id, signed.size)
        return build_export(
            dossier, leaf_index=found.leaf_index, proof=found.proof, signed_note=signed.note
        )

    async def document(self, order_id: str, name: str) -> StoredDocument:
        dossier = await self.get_dossier(order_id)
        for doc in dossier.documents:
            if doc.name == name:
                return doc
        raise NotFound("document", f"{order_id}/{name}")

    async def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        async with self.uow(read_only=True) as uow:
            return await LogReader(uow.repos).consistency(first, second)

    async def get_dossier(self, order_id: str) -> SealedDossier:
        async with self.uow(read_only=True) as uow:
            dossier = await uow.repos.get_by_order(order_id)
        if dossier is None:
            raise NotFound("dossier", order_id)
        return dossier

    async def list_dossiers(self, page_size: int, after_sequence: int) -> DossierPage:
        """Dossiers in chain order, documents without their content (GetDossier has it)."""
        size = page_size or DEFAULT_PAGE_SIZE
        async with self.uow(read_only=True) as uow:
            # One more than asked, to know whether another page follows.
            rows = await uow.repos.page(after_sequence, size + 1, with_content=False)
        page, more = rows[:size], len(rows) > size
        token = encode_dossier_token(page[-1].sequence) if more and page else ""
        return DossierPage(page, token)

    async def verify_chain(self) -> ChainVerdict:
        """Recomputes every hash in sequence order, up to the head read first (dossiers sealed
        meanwhile are left for the next check)."""
        verifier = ChainVerifier()
        async with self.uow(read_only=True) as uow:
            repo = uow.repos
            head = await repo.head()
            async with aclosing(repo.chain()) as chain:
                async for dossier in chain:
                    if dossier.sequence > head.sequence:
                        break
                    verifier.feed(dossier)
            verifier.expect_head(head.sequence, head.content_hash, head.dossier_id)
        return verifier.verdict()
