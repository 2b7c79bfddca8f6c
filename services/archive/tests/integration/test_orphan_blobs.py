"""CollectOrphanBlobs on the real archive (SQLite and PostgreSQL, the local directory store,
real NATS and gRPC): the blobs a purge left behind and the one a failed sealing wrote are
listed, then deleted; a blob a record names, however old, and an orphan stored within the
grace period are never touched; a sweep interrupted after setting a blob aside is settled."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from archive_harness import Producer, RunningArchive, auth, emit_completed, start_archive

from orderline.archive.v1 import archive_pb2 as pb
from orderline.archive.v1 import archive_pb2_grpc
from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually

AUDITOR = auth("auditor")
SECOND_AUDITOR = (("authorization", "Bearer auditor-wang-token"),)
TWO_DAYS = 2 * 24 * 3600


@dataclass
class SteppingClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Archive:
    running: RunningArchive
    clock: SteppingClock
    stub: archive_pb2_grpc.ArchiveServiceStub
    store: LocalBlobStore


def tokens_file(directory: Path) -> Path:
    """Every role's development token, and a second auditor (purges are four-eyes)."""
    roles = ("clerk", "reviewer", "engineer", "maintenance", "auditor", "manager", "service")
    tokens = {f"dev-{role}": {"subject": f"{role}-dev", "roles": [role]} for role in roles}
    tokens["auditor-wang-token"] = {"subject": "auditor-wang", "roles": ["auditor"]}
    path = directory / "tokens.json"
    path.write_text(json.dumps(tokens))
    return path


@pytest_asyncio.fixture
async def archive(db_url: str, nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Archive]:
    clock = SteppingClock(datetime(2026, 5, 9, 2, 0, tzinfo=UTC))
    running = await start_archive(
        db_url, nats_server.url, tmp_path / "traces", clock=clock, tokens_file=tokens_file(tmp_path)
    )
    assert running.blob_dir is not None
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = archive_pb2_grpc.ArchiveServiceStub(channel)
        yield Archive(running, clock, stub, LocalBlobStore(running.blob_dir))
    await running.stop()


async def sealed(stub: archive_pb2_grpc.ArchiveServiceStub, key: str) -> pb.Dossier:
    async def get() -> pb.Dossier | None:
        try:
            reply = await stub.GetDossier(pb.GetDossierRequest(order_id=key), metadata=AUDITOR)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            return None
        return reply.dossier

    found = await eventually(get, within=30, what=f"{key} sealed")
    assert found is not None
    return found


def stored_days_ago(store: LocalBlobStore, digest: str, days: float = 2) -> None:
    """The blob as a write that many days ago left it (its file time)."""
    moment = time.time() - days * 24 * 3600
    os.utime(store.path_of(digest), (moment, moment))


async def document_bytes(stub: archive_pb2_grpc.ArchiveServiceStub, key: str, name: str) -> bytes:
    request = pb.GetDocumentRequest(order_id=key, name=name)
    return b"".join([c.data async for c in stub.GetDocument(request, metadata=AUDITOR)])


async def test_orphans_are_listed_then_deleted_and_no_blob_in_use_is_touched(
    archive: Archive, producer: Producer
) -> None:
    stub, store, clock = archive.stub, archive.store, archive.clock
    await emit_completed(producer, "ord-old")
    old = await sealed(stub, "ord-old")
    old_contents = [d.content for d in old.documents]
    clock.now += timedelta(days=3 * 366)  # ord-old past its retention (3 years)
    await emit_completed(producer, "ord-kept")
    kept = await sealed(stub, "ord-kept")

    asked = await stub.PurgeExpired(pb.PurgeExpiredRequest(), metadata=AUDITOR)
    assert [p.key for p in asked.purged] == ["ord-old"]
    approved = await stub.PurgeExpired(
        pb.PurgeExpiredRequest(approve_request_id=asked.purge_request_id), metadata=SECOND_AUDITOR
    )
    stone = await sealed(stub, approved.purged[0].tombstone_key)
    # A crash between the purge's commit and its deletions left the purged record's blobs; a
    # sealing whose transaction failed left one no record names; another orphan is recent.
    left_by_purge = set(await store.put_many(old_contents))
    lost = await store.put(b'{"order_id":"ord-lost","note":"its record never committed"}')
    young = await store.put(b'{"order_id":"ord-young","note":"being sealed right now"}')
    in_use = {d.sha256 for d in [*kept.documents, *stone.documents]}
    assert not left_by_purge & in_use
    for digest in left_by_purge | {lost} | in_use:
        stored_days_ago(store, digest)
    # A write interrupted two days ago, and one under way.
    leaf = store.path_of(lost).parent
    (leaf / ".tmp-0123456789abcdef-00aa").write_bytes(b"half a blo")
    os.utime(leaf / ".tmp-0123456789abcdef-00aa", (time.time() - TWO_DAYS,) * 2)
    (leaf / ".tmp-fedcba9876543210-00bb").write_bytes(b"half a blo")

    # Listed first: nothing changes.
    listed = await stub.CollectOrphanBlobs(pb.CollectOrphanBlobsRequest(), metadata=AUDITOR)
    orphans = left_by_purge | {lost}
    assert {o.sha256 for o in listed.orphans} == orphans
    assert not listed.deleted and not listed.more
    assert listed.grace_seconds == 86400
    assert (listed.referenced, listed.within_grace) == (len(in_use), 1)
    assert listed.blobs_examined == len(orphans) + len(in_use) + 1
    assert listed.orphan_bytes == sum(o.size_bytes for o in listed.orphans) > 0
    assert all(store.path_of(d).exists() for d in orphans)
    one = await stub.CollectOrphanBlobs(pb.CollectOrphanBlobsRequest(limit=1), metadata=AUDITOR)
    assert len(one.orphans) == 1 and one.more

    for role in ("clerk", "manager", "service", "engineer"):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.CollectOrphanBlobs(
                pb.CollectOrphanBlobsRequest(delete=True), metadata=auth(role)
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.CollectOrphanBlobs(pb.CollectOrphanBlobsRequest(limit=20000), metadata=AUDITOR)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    swept = await stub.CollectOrphanBlobs(
        pb.CollectOrphanBlobsRequest(delete=True), metadata=AUDITOR
    )
    assert swept.deleted and {o.sha256 for o in swept.orphans} == orphans
    assert (swept.put_back, swept.temporary_files_removed) == (0, 1)
    assert not any(store.path_of(d).exists() for d in orphans)
    assert store.path_of(young).exists()
    assert all(store.path_of(d).exists() for d in in_use)
    assert [p.name for p in leaf.iterdir() if p.name.startswith(".tmp-")] == [
        ".tmp-fedcba9876543210-00bb"
    ]
    # Every record still reads and verifies.
    order_json = next(d for d in kept.documents if d.name == "order.json")
    assert await document_bytes(stub, "ord-kept", "order.json") == order_json.content
    chain = await stub.VerifyChain(pb.VerifyChainRequest(), metadata=AUDITOR)
    assert chain.valid, chain.first_broken_dossier_id

    # A sweep interrupted after setting a blob in use aside (before it asked the records):
    # the next one puts it back.
    path = store.path_of(order_json.sha256)
    path.rename(path.with_name(f".orphan-{order_json.sha256}-0123abcd"))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await document_bytes(stub, "ord-kept", "order.json")
    assert missing.value.code() == grpc.StatusCode.DATA_LOSS
    settled = await stub.CollectOrphanBlobs(
        pb.CollectOrphanBlobsRequest(delete=True), metadata=AUDITOR
    )
    assert settled.put_back == 1 and list(settled.orphans) == []
    assert await document_bytes(stub, "ord-kept", "order.json") == order_json.content

    # Two days on, the recent orphan is old enough.
    stored_days_ago(store, young)
    last = await stub.CollectOrphanBlobs(
        pb.CollectOrphanBlobsRequest(delete=True), metadata=AUDITOR
    )
    assert [o.sha256 for o in last.orphans] == [young]
    assert not store.path_of(young).exists()


ORDERLINE = str(Path(sys.executable).with_name("orderline"))


async def orderline(*args: str) -> tuple[int, str]:
    """The real `orderline` command, without blocking the archive serving in this loop."""
    proc = await asyncio.create_subprocess_exec(
        ORDERLINE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode()


async def test_an_auditor_lists_and_deletes_orphans_from_the_cli(archive: Archive) -> None:
    store, address = archive.store, archive.running.address
    lost = await store.put(b'{"order_id":"ord-lost"}')
    stored_days_ago(store, lost)

    code, text = await orderline("dossier", "orphans", "--archive", address)
    assert code == 0, text
    assert lost in text and "1 orphan blobs found" in text
    assert "orderline dossier orphans --delete" in text
    assert store.path_of(lost).exists()

    code, text = await orderline("dossier", "orphans", "--archive", address, "--delete", "--json")
    assert code == 0, text
    reply = json.loads(text)
    assert reply["deleted"] and [o["sha256"] for o in reply["orphans"]] == [lost]
    assert not store.path_of(lost).exists()

    code, text = await orderline(
        "dossier", "orphans", "--archive", address, "--delete", "--token", "dev-manager"
    )
    assert code != 0 and "PERMISSION_DENIED" in text
