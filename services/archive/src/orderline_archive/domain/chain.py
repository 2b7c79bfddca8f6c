"""The dossier hash chain (档案哈希链): how a dossier's content hash is computed and verified.

A dossier is sealed at position `sequence` (from 1) of one chain. Its `content_hash` is

    sha256( previous_hash  ||  canonical(doc_1)  ||  canonical(doc_2)  || ... )

over the documents sorted by name, where `previous_hash` is the content hash of dossier
`sequence - 1` (`GENESIS_HASH`, 64 zeros, for the first) and `canonical(doc)` is the
canonical JSON of the document's name, media type and the sha256 of its content, followed by a
newline. Changing one byte of one document, reordering or removing a dossier, or editing a
stored hash breaks the chain at that dossier, which `ChainVerifier` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Document:
    """One file of a dossier: a name unique within the dossier, a media type and its bytes."""

    name: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def canonical_document_bytes(name: str, media_type: str, sha256: str) -> bytes:
    """The bytes a document contributes to its dossier's hash: unambiguous (JSON escapes any
    separator inside a name) and independent of how the document is stored."""
    entry = {"media_type": media_type, "name": name, "sha256": sha256}
    return (
        json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


def content_hash(previous_hash: str, documents: Iterable[Document]) -> str:
    """The content hash of a dossier that follows `previous_hash` and holds `documents`."""
    return _hash(previous_hash, [(d.name, d.media_type, d.sha256) for d in documents])


def content_hash_of(previous_hash: str, entries: Iterable[tuple[str, str, str]]) -> str:
    """The content hash from each document's (name, media type, sha256): what a reader with
    withheld documents (purged, masked) checks."""
    return _hash(previous_hash, entries)


def _hash(previous_hash: str, entries: Iterable[tuple[str, str, str]]) -> str:
    hasher = hashlib.sha256(previous_hash.encode("ascii", errors="replace"))
    for name, media_type, sha256 in sorted(entries):
        hasher.update(canonical_document_bytes(name, media_type, sha256))
    return hasher.hexdigest()


@dataclass(frozen=True)
class SealedDossier:
    """A dossier as stored: what verification reads back."""

    id: str
    order_id: str
    sequence: int
    previous_hash: str
    content_hash: str
    documents: Sequence[StoredDocument]
    sealed_at: datetime | None = None
    business_type: str = ""
    # domain/records.py: dossier, addendum, daily_report or tombstone; the order (day, purged
    # record) it is about; when it may be purged and when it was.
    kind: str = "dossier"
    subject: str = ""
    retain_until: datetime | None = None
    purged_at: datetime | None = None


@dataclass(frozen=True)
class StoredDocument:
    """A document as stored, with the sha256 recorded when it was sealed."""

    name: str
    media_type: str
    sha256: str
    content: bytes
    # The content's size; None when the content is here (then len(content)).
    size_bytes: int | None = None
    # Why `content` is not the sealed bytes: "purged" (past retention, gone) or "masked"
    # (personal data masked for the reader). Such a document is checked by its recorded
    # sha256 alone, which the content hash covers.
    withheld: str = ""

    @property
    def size(self) -> int:
        return len(self.content) if self.size_bytes is None else self.size_bytes


@dataclass(frozen=True)
class Seal:
    """What sealing the next dossier of the chain yields."""

    sequence: int
    previous_hash: str
    content_hash: str


def seal_next(head_sequence: int, head_hash: str, documents: Sequence[Document]) -> Seal:
    """Places documents after the chain head (sequence 0 and GENESIS_HASH for an empty chain)."""
    if not documents:
        raise ValueError("a dossier holds at least one document")
    names = [d.name for d in documents]
    if len(set(names)) != len(names):
        raise ValueError(f"document names must be unique within a dossier: {names}")
    previous = head_hash or GENESIS_HASH
    return Seal(head_sequence + 1, previous, content_hash(previous, documents))


@dataclass(frozen=True)
class ChainVerdict:
    valid: bool
    records_checked: int
    first_broken_dossier_id: str = ""
    reason: str = ""


@dataclass
class ChainVerifier:
    """Checks dossiers fed in sequence order, one at a time (so a long chain streams through).

    A dossier is broken when its sequence does not follow the previous one, its previous_hash
    is not the previous dossier's stored content hash, a document's content does not match its
    recorded sha256, or its content hash recomputed from the documents differs from the stored
    one. Every dossier is checked; the first broken one is reported.
    """

    records_checked: int = 0
    _expected_sequence: int = 1
    _previous_hash: str = GENESIS_HASH
    _first_broken: tuple[str, str] | None = field(default=None, repr=False)

    def feed(self, dossier: SealedDossier, unreadable: str = "") -> None:
        """`unreadable` names a document whose bytes could not be read back (a blob missing or
        damaged): the dossier is broken whatever its hashes say."""
        self.records_checked += 1
        problem = unreadable or self._problem(dossier)
        if problem and self._first_broken is None:
            self._first_broken = (dossier.id, problem)
        # Continue from what is stored, so one broken dossier does not mark all later ones.
        self._expected_sequence = dossier.sequence + 1
        self._previous_hash = dossier.content_hash

    def _problem(self, dossier: SealedDossier) -> str:
        if dossier.sequence != self._expected_sequence:
            return f"sequence {dossier.sequence} where {self._expected_sequence} was expected"
        if dossier.previous_hash != self._previous_hash:
            return "previous_hash does not match the previous dossier's content hash"
        for doc in dossier.documents:
            if doc.withheld:
                continue
            if hashlib.sha256(doc.content).hexdigest() != doc.sha256:
                return f"content of document {doc.name!r} does not match its sha256"
        recomputed = _hash(
            dossier.previous_hash, [(d.name, d.media_type, d.sha256) for d in dossier.documents]
        )
        if recomputed != dossier.content_hash:
            return "content hash does not match the documents"
        return ""

    def expect_head(self, head_sequence: int, head_hash: str, head_dossier_id: str) -> None:
        """Checks that the chain ends where its head says (a deleted tail is detected)."""
        last_sequence = self._expected_sequence - 1
        if self._first_broken is not None:
            return
        if last_sequence != head_sequence or (head_sequence and self._previous_hash != head_hash):
            self._first_broken = (
                head_dossier_id,
                f"chain ends at sequence {last_sequence}, its head says {head_sequence}",
            )

    def verdict(self) -> ChainVerdict:
        if self._first_broken is None:
            return ChainVerdict(True, self.records_checked)
        dossier_id, reason = self._first_broken
        return ChainVerdict(False, self.records_checked, dossier_id, reason)


def verify_chain(dossiers: Iterable[SealedDossier]) -> ChainVerdict:
    verifier = ChainVerifier()
    for dossier in dossiers:
        verifier.feed(dossier)
    return verifier.verdict()
