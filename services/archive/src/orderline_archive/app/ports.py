"""What the archive needs from outside its database: a store of document blobs.

Documents are content-addressed: a blob's name is the SHA-256 (lowercase hex) of its bytes, so
storing the same document twice stores it once, and a blob whose bytes no longer hash to its
name has been damaged. Every implementation checks that on read and never hands out such
bytes: `open` verifies the whole blob before yielding its first chunk.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# 64 KiB, the size GetDocument streams in: well under gRPC's 4 MiB message limit.
CHUNK_BYTES = 64 * 1024

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class BlobError(Exception):
    """Base of the blob store's errors; `digest` names the blob."""

    def __init__(self, digest: str, message: str) -> None:
        super().__init__(f"blob {digest}: {message}")
        self.digest = digest


class BlobNotFound(BlobError):
    """No blob of that digest in the store."""


class BlobCorrupted(BlobError):
    """The stored bytes no longer hash to the blob's name: never served."""


class BlobStoreUnavailable(BlobError):
    """The store did not answer (a remote store down or refusing); the call may succeed later."""


def check_digest(digest: str) -> str:
    """A digest as a blob name: 64 lowercase hex digits, so it can never climb out of a path
    or an object key."""
    if not _DIGEST.match(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return digest


class BlobStore(Protocol):
    """Content-addressed blobs. Implementations: adapters/blobs_local.py (a directory, the
    default) and adapters/blobs_s3.py (any S3-compatible object store)."""

    async def put(self, data: bytes) -> str:
        """Stores the bytes (once: storing them again is a no-op) and returns their SHA-256
        hex digest. Returns only once the blob is durable."""
        ...

    async def put_many(self, contents: Sequence[bytes]) -> list[str]:
        """`put` of each, in one hand-off to the store's thread: a dossier's few documents
        cost one wake-up of a worker thread, not one each (docs/performance.md)."""
        ...

    def open(self, digest: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most CHUNK_BYTES, verified against the digest
        before the first chunk. Raises BlobNotFound or BlobCorrupted (from the first
        iteration)."""
        ...

    async def read(self, digest: str) -> bytes:
        """The whole blob, verified (for small documents: exports, the chain check)."""
        ...

    async def exists(self, digest: str) -> bool: ...

    async def delete(self, digest: str) -> None:
        """Removes the blob (a missing one is no error). Only for purging a record past its
        retention: sealed dossiers never lose their documents otherwise (orphan sweeps, which
        must not race a sealing, go through SweepableBlobStore instead)."""
        ...


@dataclass(frozen=True)
class StoredBlob:
    digest: str
    size_bytes: int
    # When the blob was last stored, in POSIX seconds of the store's own clock: written, or the
    # same bytes stored again (`put` of an existing blob refreshes it).
    stored_at: float


@dataclass(frozen=True)
class SetAside:
    """A blob moved out of its name by an orphan sweep, to be deleted or put back: `blob` as
    it was once moved (its `stored_at` read after the move, so a store of the same bytes
    that came before the move shows). `token` names it in the store."""

    blob: StoredBlob
    token: str


@runtime_checkable
class SweepableBlobStore(Protocol):
    """A blob store an orphan sweep can run on (app/orphans.py): it lists its blobs, and it
    moves a blob out of its name atomically, so that a sweep never deletes a blob that a
    concurrent `put` counted on finding there. A `put` of a blob set aside writes it anew."""

    def stored(self) -> AsyncIterator[list[StoredBlob]]:
        """Every blob of the store, in batches."""
        ...

    async def set_aside(self, digest: str) -> SetAside | None:
        """The blob moved out of its name (None: it is not there)."""
        ...

    async def put_back(self, aside: SetAside) -> None:
        """The blob back under its name (unless it was stored again meanwhile)."""
        ...

    async def discard(self, aside: SetAside) -> None:
        """The set-aside blob deleted, for good."""
        ...

    async def left_aside(self) -> list[SetAside]:
        """Blobs a sweep set aside and did not settle (it was interrupted)."""
        ...

    async def remove_stale_temporaries(self, before: float) -> int:
        """Temporary files of writes begun before `before` (POSIX seconds) and never
        finished, removed; how many."""
        ...
