"""An exported dossier verifies offline with the archive's verifier key, and any edit to any
part of it (a document, the content hash, the proof, the checkpoint) is refused with the
check that failed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderline_archive.domain import chain, checkpoint, merkle
from orderline_archive.domain.export import build_export, verify_export
from orderline_archive.domain.log_record import dossier_leaf

ORIGIN = "test.orderline/archive"


def sealed_log(n: int) -> tuple[list[chain.SealedDossier], merkle.MemoryTree]:
    dossiers, tree, previous = [], merkle.MemoryTree(), chain.GENESIS_HASH
    for i in range(1, n + 1):
        docs = [
            chain.Document("order.json", "application/json", f'{{"order":{i}}}'.encode()),
            chain.Document("voucher.json", "application/json", f'{{"voucher":{i}}}'.encode()),
        ]
        seal = chain.seal_next(i - 1, previous, docs)
        dossier = chain.SealedDossier(
            id=f"d-{i}",
            order_id=f"ord-{i}",
            sequence=seal.sequence,
            previous_hash=seal.previous_hash,
            content_hash=seal.content_hash,
            documents=tuple(
                chain.StoredDocument(d.name, d.media_type, d.sha256, d.content) for d in docs
            ),
            sealed_at=datetime(2026, 12, 6, 10, i, tzinfo=UTC),
        )
        tree.append(
            dossier_leaf(
                dossier_id=dossier.id,
                order_id=dossier.order_id,
                sequence=dossier.sequence,
                content_hash=dossier.content_hash,
                sealed_at=datetime(2026, 12, 6, 10, i, tzinfo=UTC),
            )
        )
        dossiers.append(dossier)
        previous = seal.content_hash
    return dossiers, tree


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def exported(key: Ed25519PrivateKey) -> bytes:
    dossiers, tree = sealed_log(6)
    note = checkpoint.sign(checkpoint.Checkpoint(ORIGIN, tree.size, tree.root()), ORIGIN, key)
    index = 3
    return build_export(
        dossiers[index],
        leaf_index=index,
        proof=merkle.inclusion_proof(index, tree.size, tree.node),
        signed_note=note,
    )


def vkey(key: Ed25519PrivateKey) -> str:
    return checkpoint.verifier_key(ORIGIN, key.public_key())


def edited(content: bytes, edit: Any) -> bytes:
    document = json.loads(content)
    edit(document)
    return json.dumps(document).encode()


def test_an_export_verifies_offline_with_the_verifier_key(
    exported: bytes, key: Ed25519PrivateKey
) -> None:
    verdict = verify_export(exported, vkey(key))
    assert verdict.valid, verdict.problem
    assert (verdict.order_id, verdict.dossier_id, verdict.tree_size) == ("ord-4", "d-4", 6)
    assert len(verdict.checks) == 4


def _set_doc(d: dict[str, Any]) -> None:
    d["dossier"]["documents"][0]["content"] = base64.b64encode(b'{"order":999}').decode()


def _set_doc_and_hash(d: dict[str, Any]) -> None:
    doc = d["dossier"]["documents"][0]
    doc["content"] = base64.b64encode(b'{"order":999}').decode()
    doc["sha256"] = chain.Document("x", "y", b'{"order":999}').sha256


def _set_hash(d: dict[str, Any]) -> None:
    d["dossier"]["content_hash"] = "0" * 64


def _set_proof(d: dict[str, Any]) -> None:
    d["log"]["inclusion_proof"][0] = base64.b64encode(bytes(32)).decode()


def _set_index(d: dict[str, Any]) -> None:
    d["log"]["leaf_index"] = 2


def _set_size(d: dict[str, Any]) -> None:
    d["log"]["checkpoint"] = d["log"]["checkpoint"].replace("\n6\n", "\n7\n", 1)


def _set_time(d: dict[str, Any]) -> None:
    d["dossier"]["sealed_at"] = "2026-12-06T11:00:00+00:00"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_set_doc, "does not match its SHA-256"),
        (_set_doc_and_hash, "content hash does not match"),
        (_set_hash, "content hash does not match"),
        (_set_proof, "inclusion proof"),
        (_set_index, "not the place"),
        (_set_size, "does not verify"),
        (_set_time, "inclusion proof"),
    ],
    ids=["document", "document-and-its-sha", "content-hash", "proof", "index", "size", "time"],
)
def test_any_edit_is_refused_naming_the_check(
    exported: bytes, key: Ed25519PrivateKey, edit: Any, problem: str
) -> None:
    verdict = verify_export(edited(exported, edit), vkey(key))
    assert not verdict.valid
    assert problem in verdict.problem


def test_another_key_or_a_broken_file_is_refused(exported: bytes) -> None:
    other = Ed25519PrivateKey.generate()
    assert "no signature by" in verify_export(exported, vkey(other)).problem
    assert "does not parse" in verify_export(b"{not json", vkey(other)).problem
    assert "not an exported dossier" in verify_export(b'{"format": "x"}', vkey(other)).problem


def _withheld_export(key: Ed25519PrivateKey, why: str) -> bytes:
    from dataclasses import replace

    dossiers, tree = sealed_log(6)
    index = 2
    d = dossiers[index]
    withheld = tuple(
        replace(doc, content=b'{"masked":1}' if why == "masked" else b"", withheld=why)
        if doc.name == "order.json" or why == "purged"
        else doc
        for doc in d.documents
    )
    note = checkpoint.sign(checkpoint.Checkpoint(ORIGIN, tree.size, tree.root()), ORIGIN, key)
    return build_export(
        replace(d, documents=withheld),
        leaf_index=index,
        proof=merkle.inclusion_proof(index, tree.size, tree.node),
        signed_note=note,
    )


@pytest.mark.parametrize("why", ["purged", "masked"])
def test_withheld_documents_are_checked_by_their_recorded_hash(
    key: Ed25519PrivateKey, why: str
) -> None:
    content = _withheld_export(key, why)
    verdict = verify_export(content, vkey(key))
    assert verdict.valid, verdict.problem
    named = {"order.json": why} if why == "masked" else {"order.json": why, "voucher.json": why}
    assert verdict.withheld == named
    # The recorded hash of a withheld document is still covered by the content hash and leaf.
    forged = edited(content, lambda d: d["dossier"]["documents"][0].update(sha256="a" * 64))
    assert "content hash does not match" in verify_export(forged, vkey(key)).problem
    # Withheld content is never trusted: a masked rendering is not checked, and a present
    # document still must match its hash.
    if why == "masked":
        document = json.loads(content)
        assert document["dossier"]["documents"][0]["content"] is None
        assert base64.b64decode(document["dossier"]["documents"][0]["masked_content"])
