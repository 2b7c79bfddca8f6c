"""An archive sealed by the release before the blob store (schema 0002, bytes in the rows),
upgraded: migration 0003 records sizes and business types, the old documents are still read
from their rows and verify, and new dossiers go to the blob store and chain on."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import grpc
from alembic import command
from archive_harness import CLERK, Producer, auth, emit_completed, list_all, start_archive
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import orderline_archive
from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_archive.domain.chain import seal_next
from orderline_archive.domain.documents import OrderSummary, dossier_documents
from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.migrations import alembic_config

MIGRATIONS = Path(orderline_archive.__file__).parent / "migrations"


async def seal_as_release_0002(db_url: str, order_id: str) -> None:
    """What the archive before 0003 wrote: the dossier, its documents' bytes inline."""
    docs = dossier_documents(
        OrderSummary(order_id, "iptv", "CPE-0001", f"AV-{order_id}", "2026-12-01T08:00:00Z")
    )
    seal = seal_next(0, "", docs)
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO dossiers (id, order_id, sequence, sealed_at, previous_hash,"
                    " content_hash) VALUES ('d-old', :o, 1, :at, :p, :c)"
                ),
                {
                    "o": order_id,
                    "at": datetime(2026, 12, 1, 9, tzinfo=UTC),
                    "p": seal.previous_hash,
                    "c": seal.content_hash,
                },
            )
            for i, d in enumerate(docs):
                await conn.execute(
                    text(
                        "INSERT INTO documents (dossier_id, name, position, media_type, sha256,"
                        " content) VALUES ('d-old', :n, :i, :m, :s, :b)"
                    ),
                    {"n": d.name, "i": i, "m": d.media_type, "s": d.sha256, "b": d.content},
                )
            await conn.execute(
                text("UPDATE chain_head SET sequence = 1, content_hash = :c, dossier_id = 'd-old'"),
                {"c": seal.content_hash},
            )
    finally:
        await engine.dispose()


async def test_dossiers_sealed_before_the_blob_store_survive_the_upgrade(
    db_url: str, nats_server: NatsServer, tmp_path: Path, producer: Producer
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, db_url), "0002")
    await seal_as_release_0002(db_url, "ord-old")

    archive = await start_archive(db_url, nats_server.url, tmp_path / "traces")  # → head
    try:
        async with grpc.aio.insecure_channel(archive.address) as channel:
            stub = archive_pb2_grpc.ArchiveServiceStub(channel)
            (old,) = await list_all(stub)
            assert old.business_type == "iptv"  # read from its order.json by 0003
            assert all(d.size_bytes > 0 for d in old.documents)
            chunks = [
                c
                async for c in stub.GetDocument(
                    archive_pb2.GetDocumentRequest(order_id="ord-old", name="order.json"),
                    metadata=CLERK,
                )
            ]
            assert json.loads(b"".join(c.data for c in chunks))["id"] == "ord-old"
            assert chunks[0].size_bytes == old.documents[0].size_bytes

            await emit_completed(producer, "ord-new")
            listed = await eventually(lambda: list_all(stub), lambda ds: len(ds) == 2)
            assert listed[1].previous_hash == old.content_hash
            assert archive.blob_dir is not None
            assert (archive.blob_dir / "sha256").is_dir()
            verdict = await stub.VerifyChain(
                archive_pb2.VerifyChainRequest(), metadata=auth("auditor")
            )
            assert verdict.valid and verdict.records_checked == 2
            page = await stub.ListDossiers(
                archive_pb2.ListDossiersRequest(business_type="iptv"), metadata=CLERK
            )
            assert [d.order_id for d in page.dossiers] == ["ord-old"]
    finally:
        await archive.stop()
