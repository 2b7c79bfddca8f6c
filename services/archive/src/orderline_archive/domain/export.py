"""An exported dossier: one file an auditor verifies offline with the archive's verifier key.

The file (JSON, `orderline-dossier-export/v1`) holds the dossier with its documents, its leaf
in the transparency log with the inclusion proof, and the signed checkpoint the proof leads to.
Verifying checks, in order: the checkpoint's signature; each document against its recorded
SHA-256; the dossier's content hash against its documents; the leaf against the dossier; and
the inclusion proof against the checkpoint's root. Any edit to any part fails one of them.

A document may be *withheld*: `"content": null` with `"withheld": "purged"` (the record passed
its retention and an auditor purged it) or `"masked"` (personal data, for a reader below
auditor; its masked rendering is in `"masked_content"`, for reading only). A withheld document
is checked by its recorded SHA-256 alone, which the content hash and so the leaf cover: the
export still proves the record as sealed, without its bytes. The verdict names them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderline_archive.domain import chain, merkle
from orderline_archive.domain.log_record import dossier_leaf

FORMAT = "orderline-dossier-export/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_export(
    dossier: chain.SealedDossier,
    *,
    leaf_index: int,
    proof: Sequence[bytes],
    signed_note: str,
) -> bytes:
    assert dossier.sealed_at is not None
    document = {
        "format": FORMAT,
        "dossier": {
            "id": dossier.id,
            "order_id": dossier.order_id,
            "sequence": dossier.sequence,
            "sealed_at": dossier.sealed_at.isoformat(),
            "previous_hash": dossier.previous_hash,
            "content_hash": dossier.content_hash,
            "kind": dossier.kind,
            "subject": dossier.subject,
            "purged_at": dossier.purged_at.isoformat() if dossier.purged_at else None,
            "documents": [_document(d) for d in dossier.documents],
        },
        "log": {
            "leaf_index": leaf_index,
            "inclusion_proof": [_b64(p) for p in proof],
            "checkpoint": signed_note,
        },
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _document(d: chain.StoredDocument) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": d.name, "media_type": d.media_type, "sha256": d.sha256}
    if not d.withheld:
        entry["content"] = _b64(d.content)
        return entry
    entry["content"] = None
    entry["withheld"] = d.withheld
    if d.withheld == "masked":
        entry["masked_content"] = _b64(d.content)
    return entry


@dataclass
class ExportVerdict:
    valid: bool
    order_id: str = ""
    dossier_id: str = ""
    tree_size: int = 0
    checks: list[str] = field(default_factory=list)  # what was verified, in order
    problem: str = ""  # the first check that failed
    withheld: dict[str, str] = field(default_factory=dict)  # document name -> why


class _Refused(Exception):
    pass


def verify_export(content: bytes, verifier_key: str) -> ExportVerdict:
    """Checks an exported dossier against the archive's verifier key, offline."""
    verdict = ExportVerdict(valid=False)
    try:
        _verify(content, verifier_key, verdict)
    except _Refused as exc:
        verdict.problem = str(exc)
        return verdict
    verdict.valid = True
    return verdict


def _verify(content: bytes, verifier_key: str, verdict: ExportVerdict) -> None:
    try:
        document: dict[str, Any] = json.loads(content)
        if document.get("format") != FORMAT:
            raise _Refused(f"not an exported dossier ({FORMAT})")
        d, log = document["dossier"], document["log"]
        docs = [
            chain.StoredDocument(
                name=str(x["name"]),
                media_type=str(x["media_type"]),
                sha256=str(x["sha256"]),
                content=b""
                if x["content"] is None
                else base64.b64decode(x["content"], validate=True),
                withheld="" if x["content"] is not None else str(x.get("withheld") or "withheld"),
            )
            for x in d["documents"]
        ]
        proof = [base64.b64decode(p, validate=True) for p in log["inclusion_proof"]]
        sealed_at = datetime.fromisoformat(str(d["sealed_at"]))
        leaf_index = int(log["leaf_index"])
        sequence = int(d["sequence"])
        note = str(log["checkpoint"])
    except _Refused:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise _Refused(f"the file does not parse: {type(exc).__name__}: {exc}") from None
    verdict.order_id, verdict.dossier_id = str(d["order_id"]), str(d["id"])

    # Imported here: building an export (the archive) needs no cryptography, checking one does.
    from orderline_archive.domain import checkpoint

    try:
        kept = checkpoint.open_note(note, checkpoint.Verifier.parse(verifier_key))
    except checkpoint.NoteError as exc:
        raise _Refused(f"checkpoint: {exc}") from None
    verdict.tree_size = kept.size
    verdict.checks.append(f"checkpoint signed by {kept.origin} (tree size {kept.size})")

    present = [doc for doc in docs if not doc.withheld]
    for doc in present:
        if chain.Document(doc.name, doc.media_type, doc.content).sha256 != doc.sha256:
            raise _Refused(f"document {doc.name!r} does not match its SHA-256")
    verdict.checks.append(f"{len(present)} documents match their SHA-256")
    verdict.withheld = {doc.name: doc.withheld for doc in docs if doc.withheld}
    if verdict.withheld:
        named = ", ".join(f"{n} ({why})" for n, why in sorted(verdict.withheld.items()))
        verdict.checks.append(f"withheld, checked by their recorded SHA-256 only: {named}")

    recomputed = chain.content_hash_of(
        str(d["previous_hash"]),
        [
            (x.name, x.media_type, chain.Document(x.name, x.media_type, x.content).sha256)
            if not x.withheld
            else (x.name, x.media_type, x.sha256)
            for x in docs
        ],
    )
    if recomputed != d["content_hash"]:
        raise _Refused("the dossier's content hash does not match its documents")
    verdict.checks.append("the content hash covers exactly these documents")

    if leaf_index != sequence - 1:
        raise _Refused(f"leaf {leaf_index} is not the place of dossier {sequence}")
    leaf = dossier_leaf(
        dossier_id=str(d["id"]),
        order_id=str(d["order_id"]),
        sequence=sequence,
        content_hash=str(d["content_hash"]),
        sealed_at=sealed_at,
    )
    if not merkle.verify_inclusion(merkle.leaf_hash(leaf), leaf_index, kept.size, proof, kept.root):
        raise _Refused("the inclusion proof does not lead to the checkpoint's root")
    verdict.checks.append(f"the dossier is leaf {leaf_index} of the signed log")
