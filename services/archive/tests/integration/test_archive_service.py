"""The archive in-process on real NATS and a real database (SQLite and PostgreSQL), fed with
`order.completed` events published as intake's relay would, and called over real gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path

import grpc
import pytest
from archive_harness import (
    CLERK,
    Producer,
    RunningArchive,
    auth,
    consumer_caught_up,
    emit_completed,
    list_all,
    start_archive,
    violations,
)
from sqlalchemy import update

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.events.v1 import archive_events_pb2, envelope_pb2
from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.adapters.tables import documents
from orderline_devtools.local import NatsServer, PostgresServer
from orderline_devtools.testing import new_postgres_database
from orderline_devtools.waiting import eventually
from orderline_runtime.ids import new_id


async def test_completed_order_is_sealed_once_and_announced_on_the_archive_stream(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    env = await emit_completed(producer, "ord-0001")

    async def get() -> archive_pb2.GetDossierResponse | None:
        try:
            response: archive_pb2.GetDossierResponse = await stub.GetDossier(
                archive_pb2.GetDossierRequest(order_id="ord-0001"), metadata=CLERK
            )
            return response
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            return None

    reply = await eventually(get, lambda r: r is not None)
    assert reply is not None
    dossier = reply.dossier
    assert dossier.sequence == 1
    assert dossier.previous_hash == "0" * 64
    assert dossier.HasField("sealed_at")
    docs = {d.name: d for d in dossier.documents}
    assert set(docs) == {
        "order.json",
        "voucher-reference.en.txt",
        "voucher-reference.zh-CN.txt",
        "customer.json",
        "record.json",
    }
    # customer.json is shown masked to a clerk (below auditor): its content is not the sealed
    # bytes; every other document is.
    assert [d.name for d in dossier.documents if d.masked] == ["customer.json"]
    for doc in dossier.documents:
        if not doc.masked:
            assert doc.sha256 == hashlib.sha256(doc.content).hexdigest()
    summary = json.loads(docs["order.json"].content)
    assert summary["id"] == "ord-0001"
    assert summary["voucher_id"] == "AV-ord-0001"
    assert [h["to_state"] for h in summary["history"]] == ["inProgress", "completed"]
    assert docs["voucher-reference.zh-CN.txt"].content.decode() == (
        "订单 ord-0001 的业务开通凭证 AV-ord-0001\n"
    )

    async def sealed_events() -> int:
        return int((await producer.js.stream_info("ARCHIVE")).state.messages)

    await eventually(sealed_events, lambda n: n == 1)
    raw = await producer.js.get_last_msg("ARCHIVE", "orderline.archive.dossier_sealed")
    announced = envelope_pb2.Envelope()
    announced.ParseFromString(raw.data or b"")
    sealed = archive_events_pb2.DossierSealed()
    assert announced.payload.Unpack(sealed)
    assert announced.type == "archive.dossier_sealed"
    assert announced.producer == "archive"
    assert announced.order_id == "ord-0001"
    assert (sealed.dossier_id, sealed.order_id, sealed.sequence, sealed.content_hash) == (
        dossier.id,
        "ord-0001",
        1,
        dossier.content_hash,
    )

    # The same completion published again under a new event id seals nothing more.
    again = envelope_pb2.Envelope()
    again.CopyFrom(env)
    again.id = new_id()
    await producer.publish(again)
    await consumer_caught_up(producer, published=2)
    assert [d.order_id for d in await list_all(stub)] == ["ord-0001"]
    assert await sealed_events() == 1


async def test_several_dossiers_form_a_valid_chain_listed_in_pages(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    for i in range(5):
        await emit_completed(producer, f"ord-{i:04d}")
    listed = await eventually(lambda: list_all(stub), lambda ds: len(ds) == 5)
    assert [d.sequence for d in listed] == [1, 2, 3, 4, 5]
    for prev, cur in itertools.pairwise(listed):
        assert cur.previous_hash == prev.content_hash
    # Pages carry document metadata only; GetDossier carries the content.
    assert all(doc.sha256 and not doc.content for d in listed for doc in d.documents)

    verdict = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=auth("auditor"))
    assert verdict.valid
    assert verdict.records_checked == 5
    assert verdict.first_broken_dossier_id == ""

    pages: list[list[int]] = []
    token = ""
    while True:
        page = await stub.ListDossiers(
            archive_pb2.ListDossiersRequest(page_size=2, page_token=token), metadata=CLERK
        )
        pages.append([d.sequence for d in page.dossiers])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[1, 2], [3, 4], [5]]


async def test_verify_chain_finds_a_document_tampered_in_the_database(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    for i in range(3):
        await emit_completed(producer, f"ord-{i:04d}")
    listed = await eventually(lambda: list_all(stub), lambda ds: len(ds) == 3)

    async with archive.service.db.transaction() as session:
        await session.execute(
            update(documents)
            .where(documents.c.dossier_id == listed[1].id, documents.c.name == "order.json")
            .values(content=b'{"id":"someone-else"}')
        )

    verdict = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=auth("manager"))
    assert not verdict.valid
    assert verdict.records_checked == 3
    assert verdict.first_broken_dossier_id == listed[1].id


async def test_bad_requests_and_callers_are_refused(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.GetDossier(archive_pb2.GetDossierRequest(order_id=""), metadata=CLERK)
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(empty.value)) == {"order_id"}

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetDossier(archive_pb2.GetDossierRequest(order_id="no-such"), metadata=CLERK)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as paging:
        await stub.ListDossiers(
            archive_pb2.ListDossiersRequest(page_size=501, page_token="%%%"), metadata=CLERK
        )
    assert paging.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(paging.value)) == {"page_size", "page_token"}

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.VerifyChain(archive_pb2.VerifyChainRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as engineer:
        await stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="ord-0001"), metadata=auth("engineer")
        )
    assert engineer.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_two_replicas_on_postgresql_seal_a_gap_free_chain_once_per_order(
    postgres_server: PostgresServer | None, nats_server: NatsServer, tmp_path: Path,
    producer: Producer,
) -> None:  # fmt: skip
    db_url = new_postgres_database(postgres_server)
    first = await start_archive(db_url, nats_server.url, tmp_path / "traces")
    second = await start_archive(db_url, nats_server.url, tmp_path / "traces")
    try:
        orders = [f"ord-{i:04d}" for i in range(20)]
        # Every order completed twice under different event ids, so duplicates race each other.
        await asyncio.gather(*(emit_completed(producer, o) for o in orders for _ in range(2)))
        async with grpc.aio.insecure_channel(first.address) as channel:
            stub = archive_pb2_grpc.ArchiveServiceStub(channel)
            await consumer_caught_up(producer, published=2 * len(orders))
            listed = await list_all(stub)
            assert sorted(d.order_id for d in listed) == orders
            assert [d.sequence for d in listed] == list(range(1, len(orders) + 1))
            verdict = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=CLERK)
            assert verdict.valid and verdict.records_checked == len(orders)
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_a_document_streams_in_chunks_that_reassemble_to_its_sha256(
    archive: RunningArchive,
    stub: archive_pb2_grpc.ArchiveServiceStub,
    producer: Producer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await emit_completed(producer, "ord-doc")
    listed = await eventually(lambda: list_all(stub), lambda ds: len(ds) == 1)
    # A large document, as a scanned attachment would be: several chunks, from the blob store.
    big = bytes(range(256)) * 1024  # 256 KiB
    assert archive.blob_dir is not None
    digest = await LocalBlobStore(archive.blob_dir).put(big)
    async with archive.service.db.transaction() as session:
        await session.execute(
            update(documents)
            .where(documents.c.dossier_id == listed[0].id, documents.c.name == "order.json")
            .values(sha256=digest, size_bytes=len(big))
        )

    # One document is read by its row: the dossier is never loaded whole.
    async def no_whole_dossier(*args: object, **kwargs: object) -> None:
        raise AssertionError("GetDocument loaded the whole dossier")

    monkeypatch.setattr(DossierRepository, "get_by_order", no_whole_dossier)
    chunks = [
        c
        async for c in stub.GetDocument(
            archive_pb2.GetDocumentRequest(order_id="ord-doc", name="order.json"), metadata=CLERK
        )
    ]
    assert len(chunks) == 4
    first = chunks[0]
    assert (first.name, first.media_type, first.size_bytes) == (
        "order.json",
        "application/json",
        len(big),
    )
    content = b"".join(c.data for c in chunks)
    assert content == big and hashlib.sha256(content).hexdigest() == first.sha256

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        async for _ in stub.GetDocument(
            archive_pb2.GetDocumentRequest(order_id="ord-doc", name="no-such.pdf"), metadata=CLERK
        ):
            pass
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as empty:
        async for _ in stub.GetDocument(archive_pb2.GetDocumentRequest(), metadata=CLERK):
            pass
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(empty.value)) == {"order_id", "name"}
