"""The hash chain: sealing, and verification that finds tampering at the right dossier."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from orderline_archive.domain.chain import (
    GENESIS_HASH,
    Document,
    SealedDossier,
    StoredDocument,
    canonical_document_bytes,
    content_hash,
    seal_next,
    verify_chain,
)
from orderline_archive.domain.documents import OrderSummary, dossier_documents


def summary(order_id: str) -> OrderSummary:
    return OrderSummary(
        order_id=order_id,
        business_type="broadband_install",
        device_id="CPE-0001",
        voucher_id=f"AV-{order_id}",
        created_at="2026-05-09T08:00:00Z",
    )


def build_chain(n: int) -> list[SealedDossier]:
    """n dossiers sealed one after another, as the archive stores them."""
    chain: list[SealedDossier] = []
    head_sequence, head_hash = 0, GENESIS_HASH
    for i in range(1, n + 1):
        docs = dossier_documents(summary(f"ord-{i}"))
        seal = seal_next(head_sequence, head_hash, docs)
        chain.append(
            SealedDossier(
                id=f"dos-{i}",
                order_id=f"ord-{i}",
                sequence=seal.sequence,
                previous_hash=seal.previous_hash,
                content_hash=seal.content_hash,
                documents=tuple(
                    StoredDocument(d.name, d.media_type, d.sha256, d.content) for d in docs
                ),
            )
        )
        head_sequence, head_hash = seal.sequence, seal.content_hash
    return chain


def test_first_dossier_follows_the_genesis_hash() -> None:
    seal = seal_next(0, GENESIS_HASH, dossier_documents(summary("ord-1")))
    assert seal.sequence == 1
    assert seal.previous_hash == "0" * 64
    assert len(seal.content_hash) == 64


def test_empty_head_hash_is_treated_as_genesis() -> None:
    docs = dossier_documents(summary("ord-1"))
    assert seal_next(0, "", docs) == seal_next(0, GENESIS_HASH, docs)


def test_each_dossier_links_to_the_previous_content_hash() -> None:
    chain = build_chain(3)
    assert [d.sequence for d in chain] == [1, 2, 3]
    assert chain[1].previous_hash == chain[0].content_hash
    assert chain[2].previous_hash == chain[1].content_hash


def test_content_hash_is_sha256_over_previous_hash_and_canonical_documents() -> None:
    docs = [Document("b.txt", "text/plain", b"two"), Document("a.txt", "text/plain", b"one")]
    expected = hashlib.sha256(
        GENESIS_HASH.encode()
        + canonical_document_bytes("a.txt", "text/plain", hashlib.sha256(b"one").hexdigest())
        + canonical_document_bytes("b.txt", "text/plain", hashlib.sha256(b"two").hexdigest())
    ).hexdigest()
    assert content_hash(GENESIS_HASH, docs) == expected


def test_content_hash_does_not_depend_on_document_order() -> None:
    docs = dossier_documents(summary("ord-1"))
    assert content_hash(GENESIS_HASH, docs) == content_hash(GENESIS_HASH, list(reversed(docs)))


def test_content_hash_changes_with_the_previous_hash() -> None:
    docs = dossier_documents(summary("ord-1"))
    assert content_hash(GENESIS_HASH, docs) != content_hash("f" * 64, docs)


def test_canonical_document_bytes_cannot_be_confused_by_separators_in_names() -> None:
    assert canonical_document_bytes('a","media_type', "x", "0") != canonical_document_bytes(
        "a", '","media_type', "0"
    )


def test_dossier_must_hold_documents_with_unique_names() -> None:
    with pytest.raises(ValueError):
        seal_next(0, GENESIS_HASH, [])
    doc = Document("a.txt", "text/plain", b"x")
    with pytest.raises(ValueError):
        seal_next(0, GENESIS_HASH, [doc, doc])


def test_intact_chain_is_valid_and_every_record_is_checked() -> None:
    verdict = verify_chain(build_chain(5))
    assert verdict.valid
    assert verdict.records_checked == 5
    assert verdict.first_broken_dossier_id == ""


def test_empty_chain_is_valid() -> None:
    verdict = verify_chain([])
    assert verdict.valid and verdict.records_checked == 0


def tamper_document(dossier: SealedDossier, content: bytes, *, fix_sha: bool) -> SealedDossier:
    first, *rest = dossier.documents
    sha = hashlib.sha256(content).hexdigest() if fix_sha else first.sha256
    forged = dataclasses.replace(first, content=content, sha256=sha)
    return dataclasses.replace(dossier, documents=(forged, *rest))


def test_tampered_document_content_is_detected_at_that_dossier() -> None:
    chain = build_chain(5)
    chain[2] = tamper_document(chain[2], b'{"id":"forged"}', fix_sha=False)
    verdict = verify_chain(chain)
    assert not verdict.valid
    assert verdict.first_broken_dossier_id == "dos-3"
    assert verdict.records_checked == 5
    assert "does not match its sha256" in verdict.reason


def test_tampered_content_with_a_recomputed_document_hash_is_detected_at_that_dossier() -> None:
    chain = build_chain(4)
    chain[1] = tamper_document(chain[1], b"forged", fix_sha=True)
    verdict = verify_chain(chain)
    assert not verdict.valid
    assert verdict.first_broken_dossier_id == "dos-2"
    assert "content hash" in verdict.reason


def test_rewritten_content_hash_breaks_the_link_of_the_next_dossier() -> None:
    chain = build_chain(4)
    forged = tamper_document(chain[1], b"forged", fix_sha=True)
    chain[1] = dataclasses.replace(
        forged, content_hash=content_hash(forged.previous_hash, _as_documents(forged))
    )
    verdict = verify_chain(chain)
    assert verdict.first_broken_dossier_id == "dos-3"
    assert "previous_hash" in verdict.reason


def test_removed_dossier_is_detected_at_its_successor() -> None:
    chain = build_chain(4)
    del chain[1]
    verdict = verify_chain(chain)
    assert not verdict.valid
    assert verdict.first_broken_dossier_id == "dos-3"
    assert verdict.records_checked == 3


def test_only_the_first_broken_dossier_is_reported() -> None:
    chain = build_chain(5)
    chain[3] = tamper_document(chain[3], b"later", fix_sha=False)
    chain[1] = tamper_document(chain[1], b"earlier", fix_sha=False)
    assert verify_chain(chain).first_broken_dossier_id == "dos-2"


def _as_documents(dossier: SealedDossier) -> list[Document]:
    return [Document(d.name, d.media_type, d.content) for d in dossier.documents]
