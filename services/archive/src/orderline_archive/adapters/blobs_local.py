"""Blobs in a local directory (the default store): `<root>/sha256/ab/cd/<digest>`.

Two levels of two hex digits keep any one directory small (65,536 leaf directories spread a
million blobs ~15 each). A blob is written to a temporary file in its final directory, fsynced,
renamed over its name (atomic on POSIX), and the directory fsynced: a crash leaves either no
blob or the whole blob, never a half-written one under the blob's name. A stray temporary file
(`.tmp-*`) is harmless and never read.

Reads verify: the file is hashed before its first chunk is handed out, so damaged bytes are an
error (BlobCorrupted), never served. The bytes are hashed again while they stream; a file
changed between the two passes still fails at its end, which the caller sees as a broken
stream rather than a quiet success.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

from orderline_archive.app.ports import (
    CHUNK_BYTES,
    BlobCorrupted,
    BlobNotFound,
    check_digest,
)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes) -> str:
        return (await self.put_many([data]))[0]

    async def put_many(self, contents: Sequence[bytes]) -> list[str]:
        named = [(hashlib.sha256(data).hexdigest(), data) for data in contents]
        await asyncio.to_thread(self._put_all, named)
        return [digest for digest, _ in named]

    def _put_all(self, named: Sequence[tuple[str, bytes]]) -> None:
        for digest, data in named:
            self._put(digest, data)

    def _put(self, digest: str, data: bytes) -> None:
        path = self.path_of(digest)
        # Idempotent: an intact blob of that name already holds exactly these bytes. A damaged
        # one is replaced, which repairs it for every dossier that names it.
        if path.exists() and _hash_file(path) == digest:
            return
        fresh = not path.parent.is_dir()
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            # New directories are entries in their parents: make those durable too.
            _fsync_dir(path.parent.parent)
            _fsync_dir(path.parent.parent.parent)
        tmp = path.with_name(f".tmp-{digest[:16]}-{secrets.token_hex(8)}")
        try:
            with open(tmp, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)  # blobs are immutable; a stray write is refused
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    async def open(self, digest: str) -> AsyncIterator[bytes]:
        path = self.path_of(digest)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(digest, "not in the store") from None
        try:
            if await asyncio.to_thread(_hash_stream, handle) != digest:
                raise BlobCorrupted(digest, "its bytes no longer hash to its name")
            handle.seek(0)
            hasher = hashlib.sha256()
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                hasher.update(chunk)
                yield chunk
            if hasher.hexdigest() != digest:
                raise BlobCorrupted(digest, "changed while it was read")
        finally:
            handle.close()

    async def read(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.open(digest)])

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path_of(digest).is_file)

    async def delete(self, digest: str) -> None:
        path = self.path_of(digest)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                _fsync_dir(path.parent)

        await asyncio.to_thread(remove)


def _hash_stream(handle: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := handle.read(1024 * 1024):
        hasher.update(chunk)
    return hasher.hexdigest()


def _hash_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return _hash_stream(handle)


def _fsync_dir(directory: Path) -> None:
    """Makes a rename or unlink in the directory durable (the entry, not just the data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
