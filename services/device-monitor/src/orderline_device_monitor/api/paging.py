"""Opaque page tokens for ListAlarms: where the last page ended, bound to the filters it was
issued for (a token used with other filters is refused rather than silently misapplied)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _filters(device_id: str, only_open: bool) -> str:
    return hashlib.sha256(f"{device_id}\0{only_open}".encode()).hexdigest()[:16]


def encode_token(before_id: str, *, device_id: str, only_open: bool) -> str:
    raw = json.dumps({"v": 1, "b": before_id, "f": _filters(device_id, only_open)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class BadToken(ValueError):
    pass


def decode_token(token: str, *, device_id: str, only_open: bool) -> str:
    """The alarm id the next page starts before; BadToken when it is not one of ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadToken("not a page token from this service") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("b"), str):
        raise BadToken("not a page token from this service")
    if data.get("f") != _filters(device_id, only_open):
        raise BadToken("issued for other filters (device_id, only_open)")
    before_id: str = data["b"]
    return before_id
