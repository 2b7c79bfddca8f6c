"""Field-level encryption of customers' personal data at rest (docs/security.md#pii-at-rest).

Each value is sealed alone with AES-256-GCM under a key of a keyring, with a fresh 96-bit
nonce, and stored as one text: `v1:<key id>:<urlsafe base64 of nonce + ciphertext + tag>`.
The associated data binds it to the order and the field it belongs to, so a value copied to
another row or another column does not decrypt. The keyring keeps every key id still in use:
values sealed under an older id stay readable until the start-up task seals them again under
the current one (rotation).

A value that cannot be opened (unknown key id, tampered, moved, malformed) is a `PiiError`
with a message saying which: never a wrong value.

Pure: no I/O (the keyring text is read by bootstrap.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


class PiiError(ValueError):
    """A sealed value that cannot be opened, or a keyring that cannot be used."""


def _aad(order_id: str, field_name: str) -> bytes:
    return f"orderline.intake.pii/{VERSION}/{order_id}/{field_name}".encode()


@dataclass(frozen=True)
class PiiCipher:
    """The keyring (key id → 32-byte key) and the id of the key new values are sealed with."""

    keys: Mapping[str, bytes]
    current: str
    _aeads: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise PiiError("the PII keyring has no keys")
        for key_id, key in self.keys.items():
            if not KEY_ID.match(key_id):
                raise PiiError(f"PII key id {key_id!r}: 1-32 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise PiiError(
                    f"PII key {key_id!r} has {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}"
                )
            self._aeads[key_id] = AESGCM(bytes(key))
        if self.current not in self.keys:
            raise PiiError(
                f"the current PII key id {self.current!r} is not in the keyring "
                f"(it has {', '.join(sorted(self.keys))})"
            )

    def seal(self, order_id: str, field_name: str, value: str) -> str:
        """`value` sealed under the current key; "" stays "" (nothing to hide)."""
        if not value:
            return ""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self.current].encrypt(
            nonce, value.encode(), _aad(order_id, field_name)
        )
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{VERSION}:{self.current}:{blob}"

    def open(self, order_id: str, field_name: str, stored: str) -> str:
        if not stored:
            return ""
        _, key_id, blob = _parts(stored)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise PiiError(
                f"{field_name} of order {order_id} is sealed under PII key id {key_id!r}, which "
                "is not in the keyring: keep every key id still in use until rotation is done"
            )
        try:
            raw = base64.b64decode(blob.encode(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PiiError(f"{field_name} of order {order_id}: malformed sealed value") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise PiiError(f"{field_name} of order {order_id}: sealed value too short")
        try:
            clear = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(order_id, field_name))
        except InvalidTag as exc:
            raise PiiError(
                f"{field_name} of order {order_id} does not authenticate under key "
                f"{key_id!r}: tampered with, or copied from another order or field"
            ) from exc
        return clear.decode()

    @staticmethod
    def key_id_of(stored: str) -> str:
        """The key id a stored value is sealed under ("" for an empty one)."""
        return _parts(stored)[1] if stored else ""


def _parts(stored: str) -> tuple[str, str, str]:
    parts = stored.split(":", 2)
    if len(parts) != 3 or parts[0] != VERSION:
        raise PiiError(f"not a sealed value of format {VERSION} (v1:<key id>:<base64>)")
    return parts[0], parts[1], parts[2]


def parse_keyring(text: str) -> dict[str, bytes]:
    """A keyring file: a JSON object {"key id": "base64 key"}, or lines `key id: base64 key`
    (blank lines and lines starting with # ignored). Every key exactly 32 bytes."""
    entries: dict[str, str] = {}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise PiiError(f"the PII keyring is not valid JSON: {exc.msg}") from exc
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise PiiError('the PII keyring JSON must be {"key id": "base64 key", ...}')
        entries = dict(loaded)
    else:
        for number, line in enumerate(stripped.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key_id, sep, value = line.partition(":")
            if not sep:
                raise PiiError(f"PII keyring line {number}: expected `key id: base64 key`")
            if key_id.strip() in entries:
                raise PiiError(f"PII keyring line {number}: key id {key_id.strip()!r} twice")
            entries[key_id.strip()] = value.strip()
    keys: dict[str, bytes] = {}
    for key_id, value in entries.items():
        try:
            keys[key_id] = base64.b64decode(value.encode(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PiiError(f"PII key {key_id!r} is not base64") from exc
    return keys


# The development keyring: only when development tokens are allowed (settings.py); anyone can
# decrypt with it, so never outside development.
DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEYS = {DEVELOPMENT_KEY_ID: b"orderline-dev-pii-key-not-secret"}
