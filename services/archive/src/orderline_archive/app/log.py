"""The transparency log as the archive uses it: appending a sealed dossier's leaf, signed
checkpoints, and inclusion and consistency proofs read from the stored perfect subtrees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orderline_archive.adapters.repository import DossierRepository, DossierRow
from orderline_archive.domain import merkle
from orderline_archive.domain.chain import SealedDossier
from orderline_archive.domain.log_record import dossier_leaf
from orderline_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)


def leaf_of(dossier: SealedDossier | DossierRow) -> bytes:
    assert dossier.sealed_at is not None
    return dossier_leaf(
        dossier_id=dossier.id,
        order_id=dossier.order_id,
        sequence=dossier.sequence,
        content_hash=dossier.content_hash,
        sealed_at=dossier.sealed_at,
    )


async def append_leaf(repo: DossierRepository, index: int, data: bytes) -> None:
    """Stores leaf `index` and the perfect subtrees it completes (in the sealing
    transaction, which holds the chain head's lock, so appends never interleave)."""
    stored = await repo.log_nodes(merkle.append_needs(index))
    made = merkle.new_perfect_nodes(
        index, merkle.leaf_hash(data), lambda level, i: stored[(level, i)]
    )
    await repo.add_log_nodes(made)


async def catch_up(repo: DossierRepository, through_sequence: int) -> int:
    """Appends the leaves of dossiers sealed before the log existed (or before an upgrade),
    in sequence order, up to `through_sequence`; returns the log's size afterwards."""
    size = await repo.log_size()
    while size < through_sequence:
        batch = await repo.page(size, min(500, through_sequence - size), with_content=False)
        if not batch:
            break
        for dossier in batch:
            if dossier.sequence != size + 1:
                raise RuntimeError(
                    f"dossier sequence {dossier.sequence} where {size + 1} was expected"
                )
            await append_leaf(repo, size, leaf_of(dossier))
            size += 1
    return size


class CheckpointSigner(Protocol):
    """What signs checkpoints (app/signing.py's Signer, loaded only with a key)."""

    @property
    def verifier_key(self) -> str: ...

    def sign(self, size: int, root: bytes) -> str: ...


@dataclass(frozen=True)
class SignedCheckpoint:
    note: str
    size: int
    root: bytes
    verifier_key: str


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_data: bytes
    proof: list[bytes]
    root: bytes


@dataclass(frozen=True)
class ConsistencyProof:
    first_size: int
    second_size: int
    proof: list[bytes]
    first_root: bytes
    second_root: bytes


class LogReader:
    """Reads within one snapshot (a read-only unit of work's repository)."""

    def __init__(self, repo: DossierRepository) -> None:
        self.repo = repo

    async def _nodes(self, compute: Callable[[merkle.PerfectNode], object]) -> merkle.PerfectNode:
        stored = await self.repo.log_nodes(merkle.nodes_needed(compute))

        def node(level: int, index: int) -> bytes:
            return stored[(level, index)]

        return node

    async def root(self, size: int) -> bytes:
        node = await self._nodes(lambda n: merkle.root(size, n))
        return merkle.root(size, node)

    async def checkpoint(self, signer: CheckpointSigner | None) -> SignedCheckpoint:
        if signer is None:
            raise FailedPrecondition(
                "the archive has no signing key: set ORDERLINE_ARCHIVE_SIGNING_KEY_FILE",
                reason="NO_SIGNING_KEY",
                violations=[
                    PreconditionViolation(
                        "CONFIGURATION", "ORDERLINE_ARCHIVE_SIGNING_KEY_FILE", "not set"
                    )
                ],
            )
        size = await self.repo.log_size()
        root = await self.root(size)
        note = signer.sign(size, root)
        return SignedCheckpoint(note, size, root, signer.verifier_key)

    async def _size(self, requested: int, field: str) -> int:
        size = await self.repo.log_size()
        if requested == 0:
            return size
        if not 0 < requested <= size:
            raise _invalid(field, f"must be between 1 and the log's size, {size}")
        return requested

    async def inclusion(self, order_id: str, tree_size: int) -> InclusionProof:
        size = await self._size(tree_size, "tree_size")
        dossier = await self.repo.get_by_order(order_id, with_content=False)
        if dossier is None:
            raise NotFound("dossier", order_id)
        index = dossier.sequence - 1
        if index >= size:
            raise _invalid("tree_size", f"the dossier is leaf {index}, after a tree of {size}")
        node = await self._nodes(
            lambda n: (merkle.inclusion_proof(index, size, n), merkle.root(size, n))
        )
        proof = merkle.inclusion_proof(index, size, node)
        return InclusionProof(index, size, leaf_of(dossier), proof, merkle.root(size, node))

    async def consistency(self, first: int, second: int) -> ConsistencyProof:
        second = await self._size(second, "second_tree_size")
        if not 0 < first <= second:
            raise _invalid("first_tree_size", f"must be between 1 and second_tree_size, {second}")
        node = await self._nodes(lambda n: merkle.consistency_proof(first, second, n))
        proof = merkle.consistency_proof(first, second, node)
        return ConsistencyProof(
            first, second, proof, await self.root(first), await self.root(second)
        )


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])
