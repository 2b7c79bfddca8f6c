"""What a sealed dossier contributes to the transparency log: its leaf's data.

The leaf names the dossier, its order, its place in the archive and the content hash that
covers every document (domain/chain.py), so an inclusion proof for the leaf proves the whole
dossier as sealed. The bytes are canonical JSON behind a version line, so any verifier can
rebuild them from an exported dossier.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

LEAF_FORMAT = b"orderline-dossier-leaf/v1\n"


def dossier_leaf(
    *, dossier_id: str, order_id: str, sequence: int, content_hash: str, sealed_at: datetime
) -> bytes:
    record = {
        "content_hash": content_hash,
        "dossier_id": dossier_id,
        "order_id": order_id,
        "sealed_at": sealed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "sequence": sequence,
    }
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return LEAF_FORMAT + body.encode("utf-8")
