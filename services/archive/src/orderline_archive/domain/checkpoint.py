"""Signed checkpoints of the transparency log, in the C2SP signed-note format.

A checkpoint (C2SP tlog-checkpoint) is the note body

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

signed with Ed25519 (C2SP signed-note): after a blank line, one signature line per signer,
`— <key name> <base64(key hash ‖ signature)>`, where the key hash is the first four bytes of
SHA-256(key name ‖ "\\n" ‖ 0x01 ‖ public key) and the signature covers the body. The public
key travels as a verifier key, `<name>+<key hash hex>+<base64(0x01 ‖ public key)>`, which an
auditor keeps outside the archive: a checkpoint verified against it and a consistency proof
to a later one show that nothing sealed before was changed, removed or reordered, whoever
controls the archive's database.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # em dash and a space


class NoteError(ValueError):
    """A checkpoint that does not parse or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + _raw(public_key)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"a key name has no spaces or '+': {name!r}")


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    _check_name(name)
    encoded = base64.b64encode(ED25519 + _raw(public_key)).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    name: str
    hash: bytes
    key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        try:
            name, hash_hex, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            expected_hash = bytes.fromhex(hash_hex)
        except ValueError as exc:
            raise NoteError(f"not a verifier key (name+hash+key): {exc}") from None
        if raw[:1] != ED25519 or len(raw) != 33:
            raise NoteError("the verifier key is not an Ed25519 key")
        key = Ed25519PublicKey.from_public_bytes(raw[1:])
        if key_hash(name, key) != expected_hash:
            raise NoteError("the verifier key's hash does not match its name and key")
        return cls(name, expected_hash, key)


def sign(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note of the checkpoint."""
    _check_name(name)
    if "\n" in checkpoint.origin or not checkpoint.origin:
        raise ValueError("the origin is one non-empty line")
    body = checkpoint.body()
    signature = private_key.sign(body.encode())
    blob = key_hash(name, private_key.public_key()) + signature
    return f"{body}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def open_note(note: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint of a note signed by `verifier`'s key; NoteError when it is not one."""
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("a signed note is a body, a blank line and signature lines")
    body += "\n"
    verified = False
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("a signature is not base64") from None
        if name != verifier.name or blob[:4] != verifier.hash:
            continue  # another signer's line: not ours to check
        try:
            verifier.key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise NoteError(f"the signature of {name} does not verify") from None
        verified = True
    if not verified:
        raise NoteError(f"the note carries no signature by {verifier.name}")
    lines = body.split("\n")
    if len(lines) < 4:
        raise NoteError("a checkpoint body has an origin, a size and a root hash")
    note_origin, size_text, root_text = lines[0], lines[1], lines[2]
    if origin is not None and note_origin != origin:
        raise NoteError(f"the checkpoint is for {note_origin!r}, not {origin!r}")
    if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
        raise NoteError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise NoteError("the root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    return Checkpoint(note_origin, int(size_text), root)
