"""The key that signs the log's checkpoints. Imported only when a key is configured or a
checkpoint is signed: loading `cryptography` costs a serving process about 6 MiB, which an
archive without a key (or one that only seals) need not pay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderline_archive.domain import checkpoint
from orderline_runtime.keys import load_ed25519_private_key


@dataclass(frozen=True)
class Signer:
    """The key checkpoints are signed with; its name is the log's origin."""

    origin: str
    key: Ed25519PrivateKey

    @classmethod
    def from_file(cls, origin: str, path: Path) -> Signer:
        return cls(origin, load_ed25519_private_key(path))

    @property
    def verifier_key(self) -> str:
        return checkpoint.verifier_key(self.origin, self.key.public_key())

    def sign(self, size: int, root: bytes) -> str:
        return checkpoint.sign(
            checkpoint.Checkpoint(self.origin, size, root), self.origin, self.key
        )
