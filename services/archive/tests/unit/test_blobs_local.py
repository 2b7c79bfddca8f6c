"""The local blob store: content-addressed paths, atomic and idempotent writes, and damaged
blobs refused rather than served."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.app.ports import CHUNK_BYTES, BlobCorrupted, BlobNotFound


async def test_a_blob_is_named_by_its_sha256_and_reads_back_in_chunks(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = bytes(range(256)) * 1024 + b"tail"  # four full chunks and a short one
    digest = await store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.path_of(digest) == tmp_path / "sha256" / digest[:2] / digest[2:4] / digest
    chunks = [c async for c in store.open(digest)]
    assert [len(c) for c in chunks] == [CHUNK_BYTES] * 4 + [4]
    assert b"".join(chunks) == data
    assert await store.read(digest) == data
    assert await store.exists(digest)


async def test_putting_the_same_bytes_again_stores_them_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    first = await store.put(b"order.json")
    inode = store.path_of(first).stat().st_ino
    assert await store.put(b"order.json") == first
    # Not rewritten: the same file, and no temporary file left behind.
    assert store.path_of(first).stat().st_ino == inode
    assert [p.name for p in store.path_of(first).parent.iterdir()] == [first]


async def test_a_dossier_s_documents_are_stored_together_each_under_its_own_name(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    known = await store.put(b"order.json")
    contents = [b"order.json", "凭证 voucher".encode(), b""]
    digests = await store.put_many(contents)
    assert digests[0] == known
    assert digests == [hashlib.sha256(c).hexdigest() for c in contents]
    assert [await store.read(d) for d in digests] == contents


async def test_a_write_is_atomic_a_failed_one_leaves_no_blob_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)
    calls: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", crash)
    digest = hashlib.sha256(b"never whole").hexdigest()
    with pytest.raises(OSError, match="disk gone"):
        await store.put(b"never whole")
    # The data was fsynced before the rename; the rename never happened, so no blob exists
    # under its name and the temporary file is gone.
    assert calls
    assert not await store.exists(digest)
    assert list(store.path_of(digest).parent.iterdir()) == []

    monkeypatch.undo()
    assert await store.put(b"never whole") == digest
    assert await store.read(digest) == b"never whole"
    assert store.path_of(digest).stat().st_mode & 0o222 == 0  # read-only once written


async def test_a_damaged_blob_is_an_error_never_served(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = await store.put(b"sealed document")
    path = store.path_of(digest)
    path.chmod(0o644)
    path.write_bytes(b"sealed documenT")
    served: list[bytes] = []
    with pytest.raises(BlobCorrupted) as damaged:
        async for chunk in store.open(digest):
            served.append(chunk)
    assert served == []  # not even the first chunk
    assert damaged.value.digest == digest
    with pytest.raises(BlobCorrupted):
        await store.read(digest)
    # Putting the document again repairs the blob.
    assert await store.put(b"sealed document") == digest
    assert await store.read(digest) == b"sealed document"


async def test_a_missing_blob_and_a_bad_digest_are_refused(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    missing = hashlib.sha256(b"nothing").hexdigest()
    assert not await store.exists(missing)
    with pytest.raises(BlobNotFound):
        await store.read(missing)
    # A digest is a name, never a path: nothing outside the root can be reached.
    for bad in ("../../etc/passwd", "A" * 64, missing[:-1]):
        with pytest.raises(ValueError):
            await store.read(bad)


async def test_delete_removes_a_blob_and_ignores_a_missing_one(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = await store.put(b"past retention")
    await store.delete(digest)
    assert not await store.exists(digest)
    await store.delete(digest)


# --- orphan sweeps ------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


async def test_storing_the_same_bytes_again_counts_as_storing_them_now(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = await store.put(b"dossier.json")
    _age(store.path_of(digest), 3 * 86400)
    before = time.time()
    await store.put(b"dossier.json")
    [[blob]] = [batch async for batch in store.stored()]
    assert (blob.digest, blob.size_bytes) == (digest, len(b"dossier.json"))
    assert blob.stored_at >= before - 1  # an orphan sweep's grace period starts again


async def test_a_blob_set_aside_is_written_anew_by_a_put_and_a_put_back_keeps_that_one(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    digest = await store.put(b"order.json")
    _age(store.path_of(digest), 3 * 86400)
    aside = await store.set_aside(digest)
    assert aside is not None and aside.blob.stored_at < time.time() - 2 * 86400
    assert not await store.exists(digest)
    assert await store.set_aside(digest) is None  # not there: nothing to set aside
    # A sealing stores the same bytes while the blob is aside: it finds none and writes it.
    await store.put(b"order.json")
    fresh = store.path_of(digest).stat().st_ino
    assert [a.token for a in await store.left_aside()] == [aside.token]
    await store.put_back(aside)
    assert store.path_of(digest).stat().st_ino == fresh
    assert await store.read(digest) == b"order.json"
    assert await store.left_aside() == []


async def test_a_blob_stored_again_before_it_is_set_aside_shows_as_stored_now(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    digest = await store.put(b"voucher.dsse.json")
    _age(store.path_of(digest), 3 * 86400)
    before = time.time()
    await store.put(b"voucher.dsse.json")  # a sealing counting on finding it
    aside = await store.set_aside(digest)
    assert aside is not None and aside.blob.stored_at >= before - 1
    await store.put_back(aside)
    assert await store.read(digest) == b"voucher.dsse.json"
    assert await store.left_aside() == []


async def test_a_discarded_blob_is_gone_and_stale_temporary_files_are_removed(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    digests = await store.put_many([b"a", b"b"])
    aside = await store.set_aside(digests[0])
    assert aside is not None
    await store.discard(aside)
    assert not await store.exists(digests[0]) and await store.left_aside() == []
    assert [[b.digest for b in batch] async for batch in store.stored()] == [[digests[1]]]
    leaf = store.path_of(digests[1]).parent
    (leaf / ".tmp-old").write_bytes(b"x")
    _age(leaf / ".tmp-old", 3 * 86400)
    (leaf / ".tmp-new").write_bytes(b"x")
    assert await store.remove_stale_temporaries(time.time() - 86400) == 1
    assert sorted(p.name for p in leaf.iterdir()) == [".tmp-new", digests[1]]
