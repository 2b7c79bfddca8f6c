"""Personal data in a dossier, shown masked to every role below auditor.

The dossier keeps the personal data it is given unmasked (an auditor must be able to read the
record as sealed), in one document, `customer.json`, so that masking it leaves every other
document byte for byte as sealed. A masked rendering no longer hashes to the document's
SHA-256: GetDossier marks it `masked`, and an export made for such a caller carries it as
withheld (domain/export.py), its hash still covered by the content hash and the leaf.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from orderline_runtime.pii import mask_address, mask_id_number, mask_phone

# Who reads personal data in the archive as sealed.
SEES_PII = frozenset({"auditor"})
# The documents that may hold personal data.
PII_DOCUMENTS = frozenset({"customer.json"})


def sees_pii(roles: Iterable[str]) -> bool:
    return bool(SEES_PII & set(roles))


def mask_name(name: str) -> str:
    """王芳 -> 王*; Jane Doe -> J*******: enough to recognise, not to identify."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


_MASKS = {
    "name": mask_name,
    "phone": mask_phone,
    "id_number": mask_id_number,
    "address": mask_address,
    "old_address": mask_address,
    "new_address": mask_address,
}


def _mask(value: object) -> object:
    if isinstance(value, dict):
        return {
            k: _MASKS[k](v) if k in _MASKS and isinstance(v, str) else _mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def masked_content(content: bytes) -> bytes:
    """The document with every personal field masked (canonical JSON again); a document that
    is not JSON is withheld entirely (empty)."""
    try:
        value = json.loads(content)
    except ValueError:
        return b""
    return json.dumps(
        _mask(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def needs_masking(name: str, roles: Iterable[str]) -> bool:
    return name in PII_DOCUMENTS and not sees_pii(roles)
