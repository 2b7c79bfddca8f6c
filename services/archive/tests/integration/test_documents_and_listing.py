"""Documents in the blob store (rows keep digest, media type, name and size), served and
exported from it, damage reported as DATA_LOSS and never served; documents of dossiers sealed
before the blob store still read from their rows; ListDossiers' filters and page tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from datetime import timedelta

import grpc
import pytest
from archive_harness import (
    CLERK,
    Producer,
    RunningArchive,
    auth,
    completed,
    list_all,
    violations,
)
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select, update

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.adapters.tables import documents
from orderline_archive.domain.export import verify_export
from orderline_devtools.waiting import eventually

AUDITOR = auth("auditor")


async def seal(producer: Producer, order_id: str, business_type: str = "broadband_install") -> None:
    event = completed(order_id)
    event.business_type = business_type
    await producer.emit("order.completed", event, order_id=order_id)


async def sealed(
    stub: archive_pb2_grpc.ArchiveServiceStub, count: int
) -> list[archive_pb2.Dossier]:
    return await eventually(lambda: list_all(stub), lambda ds: len(ds) == count)


async def get_document(
    stub: archive_pb2_grpc.ArchiveServiceStub,
    order_id: str,
    name: str,
    metadata: tuple[tuple[str, str]] = CLERK,
) -> list[archive_pb2.GetDocumentResponse]:
    request = archive_pb2.GetDocumentRequest(order_id=order_id, name=name)
    return [c async for c in stub.GetDocument(request, metadata=metadata)]


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def blob_store(archive: RunningArchive) -> LocalBlobStore:
    assert archive.blob_dir is not None
    return LocalBlobStore(archive.blob_dir)


async def test_documents_live_in_the_blob_store_and_rows_keep_their_digest_and_size(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await seal(producer, "ord-1")
    (listed,) = await sealed(stub, 1)
    async with archive.service.db.reading() as conn:
        rows = (
            await conn.execute(
                select(
                    documents.c.name,
                    documents.c.sha256,
                    documents.c.size_bytes,
                    documents.c.content,
                )
            )
        ).all()
    assert len(rows) == 5
    store = blob_store(archive)
    for name, digest, size, content in rows:
        assert content is None  # the bytes are in the store, named by their SHA-256
        assert store.path_of(digest).is_file()
        data = await store.read(digest)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
        chunks = await get_document(stub, "ord-1", name, AUDITOR)
        assert b"".join(c.data for c in chunks) == data
        assert chunks[0].size_bytes == size
    # Pages carry each document's size but not its bytes; GetDossier carries the bytes.
    assert all(d.size_bytes > 0 and not d.content for d in listed.documents)
    assert listed.business_type == "broadband_install"
    full = await stub.GetDossier(archive_pb2.GetDossierRequest(order_id="ord-1"), metadata=AUDITOR)
    assert all(hashlib.sha256(d.content).hexdigest() == d.sha256 for d in full.dossier.documents)

    # The export carries the documents read from the store, and verifies offline.
    export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-1"), metadata=AUDITOR
    )
    verdict = verify_export(export.content, archive.verifier_key)
    assert verdict.valid, verdict.problem
    assert "5 documents match their SHA-256" in verdict.checks


async def test_a_damaged_or_missing_blob_is_data_loss_and_never_served(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await seal(producer, "ord-1")
    await seal(producer, "ord-2")
    listed = await sealed(stub, 2)
    store = blob_store(archive)
    doc = next(d for d in listed[1].documents if d.name == "order.json")
    path = store.path_of(doc.sha256)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"ord-2", b"ord-9"))

    request = archive_pb2.GetDocumentRequest(order_id="ord-2", name="order.json")
    received: list[archive_pb2.GetDocumentResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as damaged:
        async for chunk in stub.GetDocument(request, metadata=CLERK):
            received.append(chunk)
    assert damaged.value.code() == grpc.StatusCode.DATA_LOSS
    assert reason(damaged.value) == "DOCUMENT_DAMAGED"
    assert received == []  # not even the metadata

    for call in (
        stub.GetDossier(archive_pb2.GetDossierRequest(order_id="ord-2"), metadata=CLERK),
        stub.ExportDossier(archive_pb2.ExportDossierRequest(order_id="ord-2"), metadata=AUDITOR),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.DATA_LOSS

    verdict = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR)
    assert not verdict.valid
    assert verdict.first_broken_dossier_id == listed[1].id
    # The other dossier is untouched and still served.
    assert await get_document(stub, "ord-1", "order.json")

    path.unlink()
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get_document(stub, "ord-2", "order.json")
    assert missing.value.code() == grpc.StatusCode.DATA_LOSS
    assert reason(missing.value) == "DOCUMENT_MISSING"


async def test_documents_sealed_before_the_blob_store_are_read_from_their_rows(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await seal(producer, "ord-old")
    (listed,) = await sealed(stub, 1)
    store = blob_store(archive)
    # As migration 0003 leaves a row written before it: the bytes inline, no size, no blob.
    async with archive.service.db.transaction() as session:
        for doc in listed.documents:
            data = await store.read(doc.sha256)
            await session.execute(
                update(documents)
                .where(documents.c.dossier_id == listed.id, documents.c.name == doc.name)
                .values(content=data, size_bytes=None)
            )
            await store.delete(doc.sha256)

    (again,) = await list_all(stub)
    assert [d.size_bytes for d in again.documents] == [d.size_bytes for d in listed.documents]
    chunks = await get_document(stub, "ord-old", "order.json")
    content = b"".join(c.data for c in chunks)
    assert hashlib.sha256(content).hexdigest() == chunks[0].sha256
    verdict = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR)
    assert verdict.valid
    export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-old"), metadata=AUDITOR
    )
    assert verify_export(export.content, archive.verifier_key).valid


def ts(value: object) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


async def test_list_dossiers_filters_by_order_business_type_and_sealed_time_in_pages(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    types = ["iptv", "broadband_install", "iptv", "fixed_line", "iptv"]
    for i, business_type in enumerate(types):
        await seal(producer, f"ord-{i}", business_type)
    everything = await sealed(stub, 5)
    assert [d.business_type for d in everything] == types

    async def listed(**filters: object) -> list[str]:
        pages: list[str] = []
        token = ""
        while True:
            reply = await stub.ListDossiers(
                archive_pb2.ListDossiersRequest(page_size=2, page_token=token, **filters),  # type: ignore[arg-type]
                metadata=CLERK,
            )
            pages.extend(d.order_id for d in reply.dossiers)
            token = reply.next_page_token
            if not token:
                return pages

    assert await listed(business_type="iptv") == ["ord-0", "ord-2", "ord-4"]
    assert await listed(order_id="ord-3") == ["ord-3"]
    assert await listed(order_id="ord-3", business_type="iptv") == []
    assert await listed(business_type="relocation") == []

    third = everything[2].sealed_at.ToDatetime()
    fourth = everything[3].sealed_at.ToDatetime()
    # sealed_after is inclusive, sealed_before exclusive.
    assert await listed(sealed_after=ts(third)) == ["ord-2", "ord-3", "ord-4"]
    assert await listed(sealed_before=ts(third)) == ["ord-0", "ord-1"]
    if fourth > third:
        assert await listed(sealed_after=ts(third), sealed_before=ts(fourth)) == ["ord-2"]
    later = everything[4].sealed_at.ToDatetime() + timedelta(days=1)
    assert await listed(sealed_after=ts(later)) == []
    iptv_before = await listed(business_type="iptv", sealed_before=ts(later))
    assert iptv_before == ["ord-0", "ord-2", "ord-4"]

    # A page token is bound to the filters it was issued for.
    first = await stub.ListDossiers(
        archive_pb2.ListDossiersRequest(page_size=1, business_type="iptv"), metadata=CLERK
    )
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as other_filters:
        await stub.ListDossiers(
            archive_pb2.ListDossiersRequest(
                page_size=1, business_type="fixed_line", page_token=first.next_page_token
            ),
            metadata=CLERK,
        )
    assert other_filters.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(other_filters.value)) == {"page_token"}


async def test_bad_list_filters_and_document_requests_are_refused(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    now = Timestamp()
    now.GetCurrentTime()
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.ListDossiers(
            archive_pb2.ListDossiersRequest(
                order_id="x" * 65,
                business_type="Broadband Install",
                sealed_after=now,
                sealed_before=now,
            ),
            metadata=CLERK,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(bad.value)) == {"order_id", "business_type", "sealed_before"}

    with pytest.raises(grpc.aio.AioRpcError) as bad_time:
        await stub.ListDossiers(
            archive_pb2.ListDossiersRequest(sealed_after=Timestamp(seconds=0, nanos=-1)),
            metadata=CLERK,
        )
    assert bad_time.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(bad_time.value)) == {"sealed_after"}

    with pytest.raises(grpc.aio.AioRpcError) as no_dossier:
        await get_document(stub, "no-such-order", "order.json")
    assert no_dossier.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as no_export:
        await stub.ExportDossier(
            archive_pb2.ExportDossierRequest(order_id="no-such-order"), metadata=AUDITOR
        )
    assert no_export.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as engineer:
        await stub.ListDossiers(archive_pb2.ListDossiersRequest(), metadata=auth("engineer"))
    assert engineer.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def orderline(*args: str) -> tuple[int, str, str]:
    """The CLI as a user runs it (in a subprocess, so the in-process archive keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderline_cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    # Generous: a guard against a hung process, not a measure (CI machines are shared).
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_orderline_dossier_list_filters_and_pages(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    for i, business_type in enumerate(["iptv", "fixed_line", "iptv"]):
        await seal(producer, f"ord-{i}", business_type)
    await sealed(stub, 3)
    where = ("--archive", archive.address)

    code, out, err = await orderline("dossier", "list", "--type", "iptv", "--json", *where)
    assert code == 0, err
    listed = json.loads(out)
    assert [d["order_id"] for d in listed["dossiers"]] == ["ord-0", "ord-2"]
    assert listed["next_page_token"] == ""

    code, out, err = await orderline("dossier", "list", "--limit", "1", *where)
    assert code == 0, err
    assert "ord-0" in out and "ord-1" not in out
    token = out.rsplit("--page-token ", 1)[1].strip()
    code, out, err = await orderline(
        "dossier", "list", "--limit", "1", "--page-token", token, *where
    )
    assert code == 0, err
    assert "ord-1" in out and "fixed_line" in out

    code, out, err = await orderline(
        "dossier", "list", "--sealed-after", "2999-01-01T00:00:00Z", "--json", *where
    )
    assert code == 0, err
    assert json.loads(out)["dossiers"] == []

    code, out, err = await orderline("dossier", "list", "--sealed-after", "yesterday", *where)
    assert code == 2
    assert "--sealed-after" in err
    code, out, err = await orderline("dossier", "list", "--type", "Bad Type", "--json", *where)
    assert code != 0
    assert json.loads(err)["error"]["code"] == "INVALID_ARGUMENT"
