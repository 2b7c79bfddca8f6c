"""The transparency log through the archive's real gRPC API, on SQLite and PostgreSQL: every
sealed dossier is provable against a signed checkpoint an auditor keeps, later checkpoints
prove they extend earlier ones, and a record changed in the database fails its proof."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from archive_harness import (
    Producer,
    RunningArchive,
    auth,
    emit_completed,
    list_all,
    violations,
)
from sqlalchemy import delete, update

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.adapters.tables import dossiers, log_nodes
from orderline_archive.app.queries import ArchiveQueries
from orderline_archive.domain.checkpoint import Checkpoint, Verifier, open_note
from orderline_archive.domain.export import verify_export
from orderline_archive.domain.merkle import leaf_hash, verify_consistency, verify_inclusion
from orderline_devtools.waiting import eventually
from orderline_runtime.errors import FailedPrecondition

AUDITOR = auth("auditor")


async def seal(producer: Producer, stub: archive_pb2_grpc.ArchiveServiceStub, *ids: str) -> None:
    before = len(await list_all(stub))
    for order_id in ids:
        await emit_completed(producer, order_id)
    await eventually(lambda: list_all(stub), lambda ds: len(ds) == before + len(ids))


async def kept_checkpoint(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub
) -> Checkpoint:
    """A checkpoint as an auditor keeps it: verified with the verifier key held outside."""
    reply = await stub.GetCheckpoint(archive_pb2.GetCheckpointRequest(), metadata=AUDITOR)
    assert reply.verifier_key == archive.verifier_key
    kept = open_note(reply.signed_note, Verifier.parse(archive.verifier_key))
    assert (kept.size, kept.root) == (reply.tree_size, reply.root_hash)
    return kept


async def proves(
    stub: archive_pb2_grpc.ArchiveServiceStub, order_id: str, kept: Checkpoint
) -> bool:
    reply = await stub.GetInclusionProof(
        archive_pb2.GetInclusionProofRequest(order_id=order_id, tree_size=kept.size),
        metadata=AUDITOR,
    )
    assert reply.tree_size == kept.size
    return verify_inclusion(
        leaf_hash(reply.leaf_data), reply.leaf_index, kept.size, list(reply.proof), kept.root
    )


async def test_every_sealed_dossier_is_provable_against_a_signed_checkpoint(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    orders = [f"ord-{i:04d}" for i in range(7)]
    await seal(producer, stub, *orders)
    kept = await kept_checkpoint(archive, stub)
    assert kept.size == 7 and kept.origin == "test.orderline/archive"
    listed = {d.order_id: d for d in await list_all(stub)}
    for order_id in orders:
        assert await proves(stub, order_id, kept)
        reply = await stub.GetInclusionProof(
            archive_pb2.GetInclusionProofRequest(order_id=order_id), metadata=AUDITOR
        )
        # The leaf names the dossier and the content hash that covers its documents.
        assert listed[order_id].id.encode() in reply.leaf_data
        assert listed[order_id].content_hash.encode() in reply.leaf_data
        assert reply.leaf_index == listed[order_id].sequence - 1


async def test_a_later_checkpoint_proves_it_extends_an_earlier_one(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await seal(producer, stub, "ord-a", "ord-b", "ord-c")
    earlier = await kept_checkpoint(archive, stub)
    await seal(producer, stub, "ord-d", "ord-e")
    later = await kept_checkpoint(archive, stub)
    reply = await stub.GetConsistencyProof(
        archive_pb2.GetConsistencyProofRequest(
            first_tree_size=earlier.size, second_tree_size=later.size
        ),
        metadata=AUDITOR,
    )
    assert (reply.first_root_hash, reply.second_root_hash) == (earlier.root, later.root)
    assert verify_consistency(earlier.size, later.size, earlier.root, later.root, reply.proof)
    # Old dossiers stay provable against the old checkpoint.
    assert await proves(stub, "ord-a", earlier)


async def test_a_record_changed_in_the_database_fails_against_the_kept_checkpoint(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    """Someone with write access to the archive's database edits a sealed record: its proof
    fails. Rewriting the log's nodes to match moves the root, and the archive can no longer
    prove that its tree extends the checkpoint the auditor kept."""
    await seal(producer, stub, "ord-1", "ord-2", "ord-3", "ord-4")
    kept = await kept_checkpoint(archive, stub)
    assert await proves(stub, "ord-2", kept)

    async with archive.service.db.transaction() as session:
        await session.execute(
            update(dossiers).where(dossiers.c.order_id == "ord-2").values(content_hash="0" * 64)
        )
    assert not await proves(stub, "ord-2", kept)
    assert await proves(stub, "ord-3", kept)

    # Rewrite the whole log from the edited records (what a careful forger would do).
    async with archive.service.db.transaction() as session:
        await session.execute(delete(log_nodes))
    await seal(producer, stub, "ord-5")  # the next sealing rebuilds the log from the records
    rewritten = await kept_checkpoint(archive, stub)
    assert rewritten.size == 5
    assert await proves(stub, "ord-2", rewritten)  # consistent with itself...
    reply = await stub.GetConsistencyProof(
        archive_pb2.GetConsistencyProofRequest(first_tree_size=kept.size), metadata=AUDITOR
    )
    # ...but not with what the auditor kept.
    assert reply.first_root_hash != kept.root
    assert not verify_consistency(kept.size, rewritten.size, kept.root, rewritten.root, reply.proof)


async def test_dossiers_sealed_before_the_log_existed_join_it_in_order(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await seal(producer, stub, "old-1", "old-2", "old-3")
    async with archive.service.db.transaction() as session:
        await session.execute(delete(log_nodes))  # as after the upgrade that adds the log
    await seal(producer, stub, "new-1")
    kept = await kept_checkpoint(archive, stub)
    assert kept.size == 4
    for order_id in ("old-1", "old-2", "old-3", "new-1"):
        assert await proves(stub, order_id, kept)


async def test_bad_log_requests_are_refused_and_nothing_unsigned_is_given(
    archive: RunningArchive,
    stub: archive_pb2_grpc.ArchiveServiceStub,
    producer: Producer,
    tmp_path: Path,
) -> None:
    await seal(producer, stub, "ord-x", "ord-y")

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetInclusionProof(
            archive_pb2.GetInclusionProofRequest(order_id="no-such"), metadata=AUDITOR
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await stub.GetInclusionProof(
            archive_pb2.GetInclusionProofRequest(order_id="ord-x", tree_size=3), metadata=AUDITOR
        )
    assert too_big.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(too_big.value)) == {"tree_size"}

    with pytest.raises(grpc.aio.AioRpcError) as before_leaf:
        await stub.GetInclusionProof(
            archive_pb2.GetInclusionProofRequest(order_id="ord-y", tree_size=1), metadata=AUDITOR
        )
    assert set(violations(before_leaf.value)) == {"tree_size"}

    with pytest.raises(grpc.aio.AioRpcError) as bad_sizes:
        await stub.GetConsistencyProof(
            archive_pb2.GetConsistencyProofRequest(first_tree_size=0, second_tree_size=-1),
            metadata=AUDITOR,
        )
    assert bad_sizes.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(bad_sizes.value)) == {"first_tree_size", "second_tree_size"}

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetCheckpoint(archive_pb2.GetCheckpointRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Without a signing key the archive gives no checkpoint at all rather than an unsigned one.
    with pytest.raises(FailedPrecondition, match="ORDERLINE_ARCHIVE_SIGNING_KEY_FILE"):
        await ArchiveQueries(
            archive.service.uow, LocalBlobStore(tmp_path), signer=None
        ).checkpoint()


async def test_an_exported_dossier_verifies_offline_with_the_cli(
    archive: RunningArchive,
    stub: archive_pb2_grpc.ArchiveServiceStub,
    producer: Producer,
    tmp_path: Path,
) -> None:
    await seal(producer, stub, "ord-e1", "ord-e2", "ord-e3")
    reply = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-e2"), metadata=AUDITOR
    )
    assert reply.file_name == "dossier-ord-e2.json"
    assert verify_export(reply.content, archive.verifier_key).valid

    exported = tmp_path / reply.file_name
    exported.write_bytes(reply.content)
    key_file = tmp_path / "archive.vkey"
    key_file.write_text(archive.verifier_key + "\n")

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orderline_cli.main", "dossier", "verify", str(path),
             "--key", f"@{key_file}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    ok = verify(exported)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified: dossier" in ok.stdout and "ord-e2" in ok.stdout

    tampered = tmp_path / "tampered.json"
    document = json.loads(reply.content)
    document["dossier"]["order_id"] = "ord-e3"
    tampered.write_text(json.dumps(document))
    refused = verify(tampered)
    assert refused.returncode == 1
    assert "FAILED the inclusion proof does not lead to the checkpoint's root" in refused.stdout

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.ExportDossier(
            archive_pb2.ExportDossierRequest(order_id="no-such"), metadata=AUDITOR
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def cli(*args: str) -> tuple[int, str]:
    """The real `orderline` command, without blocking the archive serving in this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderline_cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode()


async def test_an_auditor_keeps_a_checkpoint_and_the_cli_says_whether_the_log_extends_it(
    archive: RunningArchive,
    stub: archive_pb2_grpc.ArchiveServiceStub,
    producer: Producer,
    tmp_path: Path,
) -> None:
    at = ("--archive", archive.address)
    key_file = tmp_path / "archive.vkey"
    key_file.write_text(archive.verifier_key + "\n")
    await seal(producer, stub, "ord-k1", "ord-k2")
    kept = tmp_path / "kept.note"
    code, out = await cli("checkpoint", "get", *at, "--out", str(kept))
    assert code == 0, out
    assert open_note(kept.read_text(), Verifier.parse(archive.verifier_key)).size == 2

    code, out = await cli("dossier", "get", "ord-k1", *at)
    assert code == 0, out
    assert out.startswith("dossier ") and "key ord-k1  leaf 0" in out
    assert "order.json" in out and "record.json" in out

    # The log grew: it still extends what the auditor kept.
    await seal(producer, stub, "ord-k3")
    verify = ("checkpoint", "verify", str(kept), "--key", f"@{key_file}", *at)
    code, out = await cli(*verify)
    assert code == 0, out
    assert "valid: the log at 3 leaves extends the kept checkpoint at 2" in out

    # A forger edits a sealed record and rebuilds the log to match: the kept checkpoint says so.
    async with archive.service.db.transaction() as session:
        await session.execute(
            update(dossiers).where(dossiers.c.order_id == "ord-k1").values(content_hash="0" * 64)
        )
        await session.execute(delete(log_nodes))
    await seal(producer, stub, "ord-k4")
    code, out = await cli(*verify, "--json")
    assert code == 1, out
    verdict = json.loads(out)
    assert verdict["valid"] is False and (verdict["kept_size"], verdict["current_size"]) == (2, 4)
    assert "changed, removed or moved" in verdict["problem"]

    # Without a usable verifier key nothing is claimed.
    code, out = await cli("checkpoint", "verify", str(kept), "--key", "not-a-key", *at)
    assert code == 1 and "INVALID_ARGUMENT" in out
