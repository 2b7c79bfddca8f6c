"""Ed25519 signing and verification for vouchers, over `cryptography`.

Imported only when a voucher is signed or verified (app/voucher_keys.py, the CLI): loading
`cryptography` costs a serving process about 6-8 MiB, which an idle provisioning need not pay.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orderline_provisioning.domain.attestation import key_id


class Ed25519Key:
    """A public key a voucher's signature is checked with (attestation.VerificationKey)."""

    def __init__(self, public: bytes) -> None:
        self.key = Ed25519PublicKey.from_public_bytes(public)
        self.keyid = key_id(public)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def trusted_keys(publics: Iterable[bytes]) -> dict[str, Ed25519Key]:
    """The keys by key id."""
    keys = [Ed25519Key(p) for p in publics]
    return {k.keyid: k for k in keys}


class Ed25519Signer:
    def __init__(self, private: bytes) -> None:
        self.key = Ed25519PrivateKey.from_private_bytes(private)
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.keyid = key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)
