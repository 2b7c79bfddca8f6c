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

Orphan sweeps (app/orphans.py): a blob's modification time is when it was last stored, so a
`put` of bytes already there touches the file. A sweep moves a blob it means to delete to
`.orphan-<digest>-<random>` in the same directory (a rename: atomic), and only then reads its
time and asks whether a record names it: a `put` that came before the move has touched it (the
sweep sees it stored within the grace period and puts it back), a `put` after the move finds no
blob and writes it anew. So a sweep never deletes a blob a sealing counted on finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

from orderline_archive.app.ports import (
    CHUNK_BYTES,
    BlobCorrupted,
    BlobNotFound,
    SetAside,
    StoredBlob,
    check_digest,
)

_BLOB = re.compile(r"^[0-9a-f]{64}$")
_ASIDE = re.compile(r"^\.orphan-([0-9a-f]{64})-[0-9a-f]+$")
_TEMPORARY = ".tmp-"


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
        # one is replaced, which repairs it for every dossier that names it. Storing it again
        # touches it: an orphan sweep keeps a blob stored within its grace period, so the
        # record about to name it commits before the sweep may take it. Set aside by a sweep
        # meanwhile (gone under our feet), it is written anew below.
        with contextlib.suppress(FileNotFoundError):
            if path.exists() and _hash_file(path) == digest:
                os.utime(path)
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

    # --- orphan sweeps (app/ports.py, SweepableBlobStore) -----------------------------------

    def _leaf_dirs(self) -> list[Path]:
        top = self.root / "sha256"
        if not top.is_dir():
            return []
        return sorted(
            leaf
            for first in top.iterdir()
            if first.is_dir()
            for leaf in first.iterdir()
            if leaf.is_dir()
        )

    async def stored(self) -> AsyncIterator[list[StoredBlob]]:
        """Every blob, a first-level directory (`sha256/ab`, 1/256 of the store) per batch."""
        dirs = await asyncio.to_thread(self._leaf_dirs)
        batch: list[StoredBlob] = []
        for i, leaf in enumerate(dirs):
            batch.extend(await asyncio.to_thread(_blobs_in, leaf))
            last_of_parent = i + 1 == len(dirs) or dirs[i + 1].parent != leaf.parent
            if batch and last_of_parent:
                yield batch
                batch = []

    async def set_aside(self, digest: str) -> SetAside | None:
        path = self.path_of(digest)
        aside = path.with_name(f".orphan-{digest}-{secrets.token_hex(8)}")

        def move() -> SetAside | None:
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                return None
            # Read after the move: a put that touched the blob before it shows here.
            stat = aside.stat()
            return SetAside(StoredBlob(digest, stat.st_size, stat.st_mtime), aside.name)

        return await asyncio.to_thread(move)

    async def put_back(self, aside: SetAside) -> None:
        path = self.path_of(aside.blob.digest)
        moved = path.with_name(aside.token)

        def restore() -> None:
            # A hard link does not replace: a blob written anew meanwhile (the same bytes) is
            # kept as it is, and the set-aside name goes.
            try:
                os.link(moved, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: a rename (the same bytes)
                os.replace(moved, path)
                _fsync_dir(path.parent)
                return
            moved.unlink()
            _fsync_dir(path.parent)

        await asyncio.to_thread(restore)

    async def discard(self, aside: SetAside) -> None:
        moved = self.path_of(aside.blob.digest).with_name(aside.token)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                moved.unlink()
                _fsync_dir(moved.parent)

        await asyncio.to_thread(remove)

    async def left_aside(self) -> list[SetAside]:
        def find() -> list[SetAside]:
            found = []
            for leaf in self._leaf_dirs():
                for entry in os.scandir(leaf):
                    if match := _ASIDE.match(entry.name):
                        with contextlib.suppress(FileNotFoundError):
                            stat = entry.stat()
                            blob = StoredBlob(match.group(1), stat.st_size, stat.st_mtime)
                            found.append(SetAside(blob, entry.name))
            return found

        return await asyncio.to_thread(find)

    async def remove_stale_temporaries(self, before: float) -> int:
        def remove() -> int:
            removed = 0
            for leaf in self._leaf_dirs():
                for entry in os.scandir(leaf):
                    if not entry.name.startswith(_TEMPORARY):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat().st_mtime < before:
                            os.unlink(entry.path)
                            removed += 1
            return removed

        return await asyncio.to_thread(remove)


def _blobs_in(leaf: Path) -> list[StoredBlob]:
    found = []
    for entry in os.scandir(leaf):
        if _BLOB.match(entry.name):
            with contextlib.suppress(FileNotFoundError):  # set aside by another sweep
                stat = entry.stat()
                found.append(StoredBlob(entry.name, stat.st_size, stat.st_mtime))
    return found


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
