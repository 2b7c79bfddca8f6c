"""Opaque page tokens for List RPCs: where the last page ended, bound to the filters it was
issued for, so a token used with other filters is refused rather than silently misapplied."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping

_VERSION = 1


class BadPageToken(ValueError):
    """A token this service did not issue, or issued for other filters."""


def _fingerprint(filters: Mapping[str, object]) -> str:
    canonical = json.dumps({k: str(v) for k, v in filters.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_page_token(position: str, filters: Mapping[str, object] | None = None) -> str:
    raw = json.dumps({"v": _VERSION, "p": position, "f": _fingerprint(filters or {})})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, filters: Mapping[str, object] | None = None) -> str:
    """The position the next page starts from; BadPageToken when it is not ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise BadPageToken("not a page token from this service") from None
    if (
        not isinstance(data, dict)
        or data.get("v") != _VERSION
        or not isinstance(data.get("p"), str)
    ):
        raise BadPageToken("not a page token from this service")
    if data.get("f") != _fingerprint(filters or {}):
        raise BadPageToken("issued for other filters")
    position: str = data["p"]
    return position
