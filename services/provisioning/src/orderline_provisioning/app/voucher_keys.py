"""The voucher keys: the private key new vouchers are signed with and every public key old and
new vouchers verify against (the signing key's own, plus those of keys rotated out).

The files are read at start, without `cryptography` (orderline_runtime.keys): a missing or
malformed key stops the service before it takes any work. The Ed25519 objects are built at
the first signature or verification, so an idle provisioning does not carry `cryptography`
(about 6-8 MiB, docs/performance.md).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orderline_provisioning.domain.attestation import VerificationKey
from orderline_runtime.keys import ed25519_public_keys, read_ed25519_private_bytes

if TYPE_CHECKING:
    from orderline_provisioning.domain.ed25519 import Ed25519Signer


@dataclass
class VoucherKeys:
    private: bytes = field(repr=False)
    # Public keys of earlier signing keys, still trusted for the vouchers they signed.
    earlier: Sequence[bytes] = ()
    _signer: Ed25519Signer | None = field(default=None, init=False, repr=False)
    _trusted: dict[str, VerificationKey] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_files(cls, key_file: Path, public_keys_file: Path | None = None) -> VoucherKeys:
        earlier: list[bytes] = []
        if public_keys_file is not None:
            earlier = ed25519_public_keys(
                public_keys_file.read_bytes(), source=str(public_keys_file)
            )
        return cls(read_ed25519_private_bytes(key_file), tuple(earlier))

    def _load(self) -> tuple[Ed25519Signer, dict[str, VerificationKey]]:
        with self._lock:
            if self._signer is None or self._trusted is None:
                from orderline_provisioning.domain.ed25519 import Ed25519Signer, trusted_keys

                signer = Ed25519Signer(self.private)
                trusted: dict[str, VerificationKey] = dict(trusted_keys(self.earlier))
                trusted.update(trusted_keys([signer.public]))
                self._signer, self._trusted = signer, trusted
            return self._signer, self._trusted

    @property
    def keyid(self) -> str:
        return self._load()[0].keyid

    def sign(self, message: bytes) -> bytes:
        return self._load()[0].sign(message)

    def trusted(self) -> Mapping[str, VerificationKey]:
        """Every key a voucher may be signed with, by key id."""
        return self._load()[1]
