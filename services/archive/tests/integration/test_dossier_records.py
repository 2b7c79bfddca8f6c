"""The dossier assembled from every service's events, addenda after sealing, personal data by
role, retention and PurgeExpired with tombstones, and the daily report archived once: the
archive in-process on real NATS and a real database (SQLite and PostgreSQL), called over real
gRPC, exports checked with the real `orderline dossier verify`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from archive_harness import (
    CLERK,
    Producer,
    RunningArchive,
    auth,
    completed,
    list_all,
    start_archive,
)
from google.protobuf.message import Message

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.events.v1 import order_events_pb2, provisioning_events_pb2, reporting_events_pb2
from orderline.order.v1 import order_pb2
from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.domain import merkle
from orderline_archive.domain.checkpoint import Verifier, open_note
from orderline_archive.domain.export import verify_export
from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.messaging.envelope import build_envelope

AUDITOR = auth("auditor")
ORDERLINE = str(Path(sys.executable).with_name("orderline"))
MANAGER = auth("manager")
# The trace the events travel in (W3C traceparent), as the producers' relays would send it.
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class SteppingClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Clocked:
    archive: RunningArchive
    clock: SteppingClock
    stub: archive_pb2_grpc.ArchiveServiceStub


# Purges are four-eyes: two auditors. A tokens file gives the second one, and every role its
# usual development token's name and principal, so `auth(role)` works as elsewhere.
SECOND_AUDITOR = (("authorization", "Bearer auditor-wang-token"),)


def tokens_file(directory: Path) -> Path:
    roles = ("clerk", "reviewer", "engineer", "maintenance", "auditor", "manager", "service")
    tokens = {f"dev-{role}": {"subject": f"{role}-dev", "roles": [role]} for role in roles}
    tokens["auditor-wang-token"] = {"subject": "auditor-wang", "roles": ["auditor"]}
    path = directory / "tokens.json"
    path.write_text(json.dumps(tokens))
    return path


@pytest_asyncio.fixture
async def clocked(db_url: str, nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Clocked]:
    clock = SteppingClock(datetime(2026, 5, 9, 2, 0, tzinfo=UTC))
    running = await start_archive(
        db_url, nats_server.url, tmp_path / "traces", clock=clock, tokens_file=tokens_file(tmp_path)
    )
    async with grpc.aio.insecure_channel(running.address) as channel:
        yield Clocked(running, clock, archive_pb2_grpc.ArchiveServiceStub(channel))
    await running.stop()


async def publish(
    producer: Producer, event_type: str, payload: Message, *, by: str, order_id: str = ""
) -> str:
    order_id = order_id or str(getattr(payload, "order_id", ""))
    env = build_envelope(event_type, payload, producer=by, order_id=order_id)
    await producer.js.publish(
        f"orderline.{event_type}",
        env.SerializeToString(),
        headers={"Nats-Msg-Id": env.id, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
    )
    return env.id


async def caught_up(producer: Producer, *streams: str) -> None:
    """Every event published so far on these streams handled by the archive."""
    for stream in streams:
        last = (await producer.js.stream_info(stream)).state.last_seq

        async def info(stream: str = stream) -> Any:
            return await producer.js.consumer_info(stream, "archive")

        def done(i: Any, last: int = last) -> bool:
            return bool(i.ack_floor.stream_seq >= last and i.num_ack_pending == 0)

        await eventually(info, done)


async def dossier(
    stub: archive_pb2_grpc.ArchiveServiceStub, key: str, metadata: Any = AUDITOR
) -> archive_pb2.GetDossierResponse:
    async def get() -> archive_pb2.GetDossierResponse | None:
        try:
            reply: archive_pb2.GetDossierResponse = await stub.GetDossier(
                archive_pb2.GetDossierRequest(order_id=key), metadata=metadata
            )
            return reply
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            return None

    found = await eventually(get, lambda r: r is not None)
    assert found is not None
    return found


def document(record: archive_pb2.Dossier, name: str) -> archive_pb2.ArchivedDocument:
    (found,) = [d for d in record.documents if d.name == name]
    return found


# A voucher's DSSE envelope as provisioning hands it out (its content is provisioning's to
# verify; the archive keeps the bytes).
VOUCHER_ENVELOPE = (
    b'{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",'
    b'"payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"vk-1","sig":"AA=="}]}'
)

MILESTONES = (
    "review_approved",
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
)


async def work_an_order(
    producer: Producer, order_id: str, *, start_at: str = "", stop_before: str = ""
) -> list[str]:
    """The events of every service for one order, up to (not including) its completion; or
    those before `stop_before`, or from `start_at` on."""
    o, p = order_events_pb2, provisioning_events_pb2
    job = f"job-{order_id}"
    events: list[tuple[str, Message, str]] = [
        (
            "order.created",
            o.OrderCreated(
                order_id=order_id,
                business_type="broadband_install",
                device_id="CPE-0001",
                plan="fiber-1000",
                created_by="clerk-1",
                locale="zh-CN",
            ),
            "intake",
        ),
        (
            "order.review_queued",
            o.OrderReviewQueued(
                order_id=order_id,
                business_type="broadband_install",
                reason_codes=["POSSIBLE_DUPLICATE"],
            ),
            "intake",
        ),
        (
            "order.approved",
            o.OrderApproved(order_id=order_id, approved_by="reviewer-1", plan="fiber-1000"),
            "intake",
        ),
        (
            "order.state_changed",
            o.OrderStateChanged(
                order_id=order_id,
                from_state=order_pb2.ORDER_STATE_ACKNOWLEDGED,
                to_state=order_pb2.ORDER_STATE_IN_PROGRESS,
                actor="reviewer-1",
                reason_code="APPROVED",
            ),
            "intake",
        ),
        (
            "provisioning.job_started",
            p.JobStarted(job_id=job, order_id=order_id, device_id="CPE-0001"),
            "provisioning",
        ),
        (
            "provisioning.prechecks_passed",
            p.PrechecksPassed(
                job_id=job,
                order_id=order_id,
                device_id="CPE-0001",
                checklist=[
                    p.ChecklistEntry(
                        item="firmware",
                        result="passed",
                        evidence={"firmware": "3.2.1", "minimum": "3.0.0"},
                    )
                ],
            ),
            "provisioning",
        ),
        (
            "provisioning.job_held",
            p.JobHeld(
                job_id=job, order_id=order_id, reason_code="DEVICE_ABNORMAL", alarm_id="AL-7"
            ),
            "provisioning",
        ),
        (
            "provisioning.device_configured",
            p.DeviceConfigured(
                job_id=job,
                order_id=order_id,
                config_version=3,
                template="broadband-v2",
                settings={"bandwidth_mbps": "1000", "vlan": "101"},
            ),
            "provisioning",
        ),
        (
            "provisioning.tests_passed",
            p.TestsPassed(
                job_id=job,
                order_id=order_id,
                outcomes=[
                    p.TestOutcome(kind="performance", passed=True, detail="throughput 941 Mbps"),
                    p.TestOutcome(kind="security", passed=True, detail="ports closed"),
                ],
            ),
            "provisioning",
        ),
        (
            "provisioning.service_activated",
            p.ServiceActivated(job_id=job, order_id=order_id, device_id="CPE-0001"),
            "provisioning",
        ),
        (
            "order.cancellation_requested",
            o.OrderCancellationRequested(
                order_id=order_id, cancellation_id="CX-1", reason_code="CUSTOMER_CHANGED_MIND"
            ),
            "intake",
        ),
        (
            "provisioning.cancellation_declined",
            p.CancellationDeclined(
                job_id=job,
                order_id=order_id,
                cancellation_id="CX-1",
                reason_code="SERVICE_ALREADY_ACTIVATED",
            ),
            "provisioning",
        ),
        (
            "provisioning.voucher_issued",
            p.VoucherIssued(
                job_id=job,
                order_id=order_id,
                voucher_id=f"AV-{order_id}",
                envelope=VOUCHER_ENVELOPE,
                key_id="vk-1",
            ),
            "provisioning",
        ),
        (
            "provisioning.customer_notified",
            p.CustomerNotified(job_id=job, order_id=order_id, delivery_id="D-9", channel="sms"),
            "provisioning",
        ),
    ]
    kinds = [kind for kind, _, _ in events]
    first = kinds.index(start_at) if start_at else 0
    last = kinds.index(stop_before) if stop_before else len(events)
    return [
        await publish(producer, kind, payload, by=by, order_id=order_id)
        for kind, payload, by in events[first:last]
    ]


async def test_the_dossier_holds_every_services_events_and_later_ones_become_addenda(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    ids = await work_an_order(producer, "ord-dx", stop_before="provisioning.voucher_issued")
    await caught_up(producer, "ORDER", "PROVISIONING")
    # The completion can reach the archive before provisioning's last events (another stream):
    # it waits for the events its milestones name.
    done = await publish(
        producer,
        "order.completed",
        completed("ord-dx", milestones=MILESTONES),
        by="intake",
        order_id="ord-dx",
    )
    await caught_up(producer, "ORDER")
    assert await list_all(stub) == []
    ids += await work_an_order(producer, "ord-dx", start_at="provisioning.voucher_issued")
    reply = await dossier(stub, "ord-dx")
    sealed = reply.dossier
    assert sealed.kind == "dossier" and sealed.subject == "ord-dx"
    assert sealed.HasField("retain_until")  # 3 years for broadband_install
    assert sealed.retain_until.ToDatetime().year == sealed.sealed_at.ToDatetime().year + 3
    record = json.loads(document(sealed, "record.json").content)
    sections = record["sections"]
    assert [e["type"] for e in sections["review"]] == ["order.review_queued", "order.approved"]
    assert sections["review"][1]["fields"]["approved_by"] == "reviewer-1"
    assert [e["type"] for e in sections["checklist"]] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
    ]
    assert sections["configurations"][0]["fields"]["config_version"] == "3"
    assert sections["configurations"][0]["fields"]["settings"] == {
        "bandwidth_mbps": "1000",
        "vlan": "101",
    }
    assert sections["configurations"][0]["fields"]["template"] == "broadband-v2"
    (checked,) = sections["checklist"][1]["fields"]["checklist"]
    assert (checked["item"], checked["result"], checked["evidence"]["firmware"]) == (
        "firmware",
        "passed",
        "3.2.1",
    )
    # The signed voucher, byte for byte, as a document of its own.
    voucher = document(sealed, "voucher.dsse.json")
    assert voucher.content == VOUCHER_ENVELOPE
    assert voucher.media_type == "application/vnd.dsse.envelope.v1+json"
    (tests,) = sections["tests"]
    assert {o["detail"] for o in tests["fields"]["outcomes"]} == {
        "throughput 941 Mbps",
        "ports closed",
    }
    assert sections["voucher"][0]["fields"]["voucher_id"] == "AV-ord-dx"
    assert sections["notifications"][0]["fields"] == {
        "job_id": "job-ord-dx",
        "order_id": "ord-dx",
        "delivery_id": "D-9",
        "channel": "sms",
    }
    assert [e["type"] for e in sections["cancellation"]] == [
        "order.cancellation_requested",
        "provisioning.cancellation_declined",
    ]
    assert sections["fallout"][0]["fields"]["alarm_id"] == "AL-7"
    assert sections["activation"][0]["producer"] == "provisioning"
    assert sections["confirmation"] == [] and sections["follow_ups"] == []
    # The full history: every event, the completion last, each with the trace it came in.
    assert [e["event_id"] for e in record["events"]] == [*ids[:-2], done, *ids[-2:]]
    assert {e["trace_id"] for e in record["events"]} == {TRACE}
    assert record["trace_ids"] == [TRACE]
    customer = json.loads(document(sealed, "customer.json").content)
    assert customer == {
        "order_id": "ord-dx",
        "business_type": "broadband_install",
        "device_id": "CPE-0001",
        "plan": "fiber-1000",
        "locale": "zh-CN",
        "created_by": "clerk-1",
        "channel": "sms",
    }
    assert reply.addenda == []

    # A follow-up days later: an addendum, a later leaf; the dossier is not touched.
    follow_up = await publish(
        producer,
        "order.follow_up_recorded",
        order_events_pb2.FollowUpRecorded(
            order_id="ord-dx", follow_up_id="FU-1", day=7, recorded_by="clerk-1"
        ),
        by="intake",
        order_id="ord-dx",
    )

    async def with_addendum() -> archive_pb2.GetDossierResponse:
        reply: archive_pb2.GetDossierResponse = await stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="ord-dx"), metadata=AUDITOR
        )
        return reply

    later = await eventually(with_addendum, lambda r: len(r.addenda) == 1)
    assert later.dossier == sealed
    (addendum,) = later.addenda
    assert (addendum.kind, addendum.subject, addendum.order_id) == (
        "addendum",
        "ord-dx",
        f"addendum:{follow_up}",
    )
    assert addendum.sequence == sealed.sequence + 1
    assert addendum.retain_until == sealed.retain_until  # it goes with its dossier
    body = json.loads(document(addendum, "addendum.json").content)
    assert (body["dossier_id"], body["section"]) == (sealed.id, "follow_ups")
    assert body["event"]["fields"]["follow_up_id"] == "FU-1"
    assert body["event"]["trace_id"] == TRACE
    # The addendum proves in the log like any record.
    checkpoint = await stub.GetCheckpoint(archive_pb2.GetCheckpointRequest(), metadata=AUDITOR)
    proof = await stub.GetInclusionProof(
        archive_pb2.GetInclusionProofRequest(order_id=addendum.order_id), metadata=AUDITOR
    )
    assert merkle.verify_inclusion(
        merkle.leaf_hash(proof.leaf_data),
        proof.leaf_index,
        checkpoint.tree_size,
        list(proof.proof),
        checkpoint.root_hash,
    )
    chain = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR)
    assert chain.valid and chain.records_checked == 2


async def test_personal_data_is_shown_masked_below_auditor(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    await publish(producer, "order.completed", completed("ord-pii"), by="intake")
    as_auditor = (await dossier(stub, "ord-pii", AUDITOR)).dossier
    assert not any(d.masked for d in as_auditor.documents)
    for metadata in (CLERK, MANAGER, auth("service")):
        shown = (await dossier(stub, "ord-pii", metadata)).dossier
        masked = document(shown, "customer.json")
        assert masked.masked and masked.sha256 == document(as_auditor, "customer.json").sha256
        others = [d for d in shown.documents if d.name != "customer.json"]
        assert others == [d for d in as_auditor.documents if d.name != "customer.json"]
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            request = archive_pb2.GetDocumentRequest(order_id="ord-pii", name="customer.json")
            [c async for c in stub.GetDocument(request, metadata=metadata)]
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An export below auditor withholds the personal document and still verifies.
    export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-pii"), metadata=CLERK
    )
    verdict = verify_export(export.content, archive.verifier_key)
    assert verdict.valid, verdict.problem
    assert verdict.withheld == {"customer.json": "masked"}
    full = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-pii"), metadata=AUDITOR
    )
    verdict = verify_export(full.content, archive.verifier_key)
    assert verdict.valid and verdict.withheld == {}


def cli_verify(file: Path, key: str) -> dict[str, Any]:
    """The real `orderline dossier verify`, as an auditor runs it offline."""
    done = subprocess.run(
        [ORDERLINE, "dossier", "verify", str(file), "--key", key, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode == 0) == result["valid"], done.stderr
    return result


async def test_a_purge_past_retention_leaves_a_tombstone_and_every_proof_valid(
    clocked: Clocked, producer: Producer, tmp_path: Path
) -> None:
    stub, clock, archive = clocked.stub, clocked.clock, clocked.archive
    await publish(producer, "order.completed", completed("ord-old"), by="intake")
    before = (await dossier(stub, "ord-old")).dossier
    old_export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-old"), metadata=AUDITOR
    )
    kept = await stub.GetCheckpoint(archive_pb2.GetCheckpointRequest(), metadata=AUDITOR)
    (tmp_path / "before.json").write_bytes(old_export.content)
    assert cli_verify(tmp_path / "before.json", archive.verifier_key)["valid"]

    # Not past retention yet: nothing to purge.
    reply = await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(), metadata=AUDITOR)
    assert list(reply.purged) == []
    clock.now += timedelta(days=3 * 366)  # broadband_install: kept 3 years

    for role in ("clerk", "manager", "service", "engineer", "reviewer"):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(), metadata=auth(role))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(limit=5000), metadata=AUDITOR)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    dry = await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(dry_run=True), metadata=AUDITOR)
    assert [p.key for p in dry.purged] == ["ord-old"] and dry.purged[0].tombstone_sequence == 0
    assert not dry.purge_request_id
    assert not (await dossier(stub, "ord-old")).dossier.HasField("purged_at")

    # Four-eyes: one auditor requests, nothing is purged yet; the same auditor cannot approve.
    asked = await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(), metadata=AUDITOR)
    assert asked.awaiting_approval and asked.purge_request_id.startswith("PR-")
    assert asked.requested_by == "auditor-dev" and not asked.approved_by
    assert [(p.key, p.tombstone_sequence) for p in asked.purged] == [("ord-old", 0)]
    assert not (await dossier(stub, "ord-old")).dossier.HasField("purged_at")
    approve = archive_pb2.PurgeExpiredRequest(approve_request_id=asked.purge_request_id)
    with pytest.raises(grpc.aio.AioRpcError) as own:
        await stub.PurgeExpired(approve, metadata=AUDITOR)
    assert own.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "four-eyes" in (own.value.details() or "")
    assert not (await dossier(stub, "ord-old")).dossier.HasField("purged_at")
    for bad_request in (
        archive_pb2.PurgeExpiredRequest(approve_request_id="yesterday's"),
        archive_pb2.PurgeExpiredRequest(approve_request_id=asked.purge_request_id, dry_run=True),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.PurgeExpired(bad_request, metadata=SECOND_AUDITOR)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.PurgeExpired(
            archive_pb2.PurgeExpiredRequest(approve_request_id="PR-" + "0" * 36),
            metadata=SECOND_AUDITOR,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    reply = await stub.PurgeExpired(approve, metadata=SECOND_AUDITOR)
    assert (reply.purge_request_id, reply.awaiting_approval) == (asked.purge_request_id, False)
    assert (reply.requested_by, reply.approved_by) == ("auditor-dev", "auditor-wang")
    (purged,) = reply.purged
    assert (purged.key, purged.kind, purged.record_id) == ("ord-old", "dossier", before.id)
    assert purged.tombstone_key == f"tombstone:{before.id}"
    assert purged.tombstone_sequence == before.sequence + 1

    # The content is gone: documents keep their names and hashes, the blobs are deleted.
    after = (await dossier(stub, "ord-old")).dossier
    assert after.HasField("purged_at")
    assert (after.content_hash, after.sequence) == (before.content_hash, before.sequence)
    assert all(d.purged and not d.content for d in after.documents)
    assert [(d.name, d.sha256) for d in after.documents] == [
        (d.name, d.sha256) for d in before.documents
    ]
    assert archive.blob_dir is not None
    store = LocalBlobStore(archive.blob_dir)
    assert not any(store.path_of(d.sha256).exists() for d in before.documents)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        request = archive_pb2.GetDocumentRequest(order_id="ord-old", name="order.json")
        [c async for c in stub.GetDocument(request, metadata=AUDITOR)]
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The tombstone is a record of the log, naming what was purged.
    stone = (await dossier(stub, purged.tombstone_key)).dossier
    assert (stone.kind, stone.subject) == ("tombstone", "ord-old")
    assert not stone.HasField("retain_until")  # kept for ever
    body = json.loads(document(stone, "tombstone.json").content)
    assert body["purged_record"]["content_hash"] == before.content_hash
    assert body["purged_record"]["leaf_index"] == before.sequence - 1
    assert (body["purged_by"], body["approved_by"]) == ("auditor-dev", "auditor-wang")

    # Proofs: the old export still verifies, the new one too (documents withheld as purged),
    # and the log after the purge is consistent with the checkpoint kept before it.
    new_export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id="ord-old"), metadata=AUDITOR
    )
    (tmp_path / "after.json").write_bytes(new_export.content)
    assert cli_verify(tmp_path / "before.json", archive.verifier_key)["valid"]
    result = cli_verify(tmp_path / "after.json", archive.verifier_key)
    assert result["valid"], result["problem"]
    assert set(result["withheld"].values()) == {"purged"}
    verdict = verify_export(new_export.content, archive.verifier_key)
    assert verdict.tree_size == kept.tree_size + 1
    consistency = await stub.GetConsistencyProof(
        archive_pb2.GetConsistencyProofRequest(first_tree_size=kept.tree_size), metadata=AUDITOR
    )
    verifier = Verifier.parse(archive.verifier_key)
    old_root = open_note(kept.signed_note, verifier).root
    assert merkle.verify_consistency(
        kept.tree_size,
        consistency.second_tree_size,
        old_root,
        consistency.second_root_hash,
        list(consistency.proof),
    )
    chain = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR)
    assert chain.valid, chain.first_broken_dossier_id
    # Purged once: a second approval is refused, a new request finds nothing.
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.PurgeExpired(approve, metadata=SECOND_AUDITOR)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    again = await stub.PurgeExpired(archive_pb2.PurgeExpiredRequest(), metadata=AUDITOR)
    assert list(again.purged) == [] and not again.purge_request_id


def daily_report(day: str, language: str, fmt: str, content: bytes) -> Message:
    import hashlib

    event = reporting_events_pb2.DailyReportProduced(
        day=day,
        language=language,
        format=fmt,
        media_type="text/html; charset=utf-8" if fmt == "html" else "text/csv; charset=utf-8",
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        content=content,
    )
    event.generated_at.GetCurrentTime()
    return event


async def test_the_daily_report_is_archived_once_per_day_language_and_format(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    page = "<html><body>2026-05-09 日报</body></html>".encode()
    report = daily_report("2026-05-09", "zh-CN", "html", page)
    await publish(producer, "reporting.daily_report_produced", report, by="reporting")
    # Produced again (another replica, a redelivery under a new id): sealed nothing new.
    await publish(producer, "reporting.daily_report_produced", report, by="reporting")
    csv = daily_report("2026-05-09", "zh-CN", "csv", b"Figure,Value\r\norders,0\r\n")
    await publish(producer, "reporting.daily_report_produced", csv, by="reporting")
    damaged = daily_report("2026-05-09", "en", "html", b"<html></html>")
    damaged.content = b"<html>changed</html>"  # type: ignore[attr-defined]
    await publish(producer, "reporting.daily_report_produced", damaged, by="reporting")
    await caught_up(producer, "REPORTING")

    records = await list_all(stub)
    assert sorted((r.kind, r.order_id, r.subject) for r in records) == [
        ("daily_report", "daily-report:2026-05-09:zh-CN:csv", "2026-05-09"),
        ("daily_report", "daily-report:2026-05-09:zh-CN:html", "2026-05-09"),
    ]
    key = "daily-report:2026-05-09:zh-CN:html"
    request = archive_pb2.GetDocumentRequest(
        order_id=key, name="daily-report-2026-05-09.zh-CN.html"
    )
    chunks = [c async for c in stub.GetDocument(request, metadata=MANAGER)]
    assert b"".join(c.data for c in chunks) == page
    assert chunks[0].sha256 == report.sha256  # type: ignore[attr-defined]
    export = await stub.ExportDossier(
        archive_pb2.ExportDossierRequest(order_id=key), metadata=AUDITOR
    )
    verdict = verify_export(export.content, archive.verifier_key)
    assert verdict.valid, verdict.problem


async def test_a_completion_waits_for_its_events_only_so_long(
    clocked: Clocked, producer: Producer
) -> None:
    stub, clock = clocked.stub, clocked.clock
    await publish(
        producer,
        "order.completed",
        completed("ord-late", milestones=("review_approved", "customer_notified")),
        by="intake",
    )
    await caught_up(producer, "ORDER")
    assert await list_all(stub) == []  # waiting for provisioning.customer_notified
    clock.now += timedelta(minutes=3)  # longer than it waits: sealed with what it has
    sealed = (await dossier(stub, "ord-late")).dossier
    record = json.loads(document(sealed, "record.json").content)
    assert [e["type"] for e in record["events"]] == ["order.completed"]
    # The event it waited for, arriving after all: an addendum.
    await publish(
        producer,
        "provisioning.customer_notified",
        provisioning_events_pb2.CustomerNotified(
            job_id="job-late", order_id="ord-late", delivery_id="D-1", channel="sms"
        ),
        by="provisioning",
    )

    async def addenda() -> list[archive_pb2.Dossier]:
        reply = await stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="ord-late"), metadata=AUDITOR
        )
        return list(reply.addenda)

    (addendum,) = await eventually(addenda, lambda found: len(found) == 1)
    body = json.loads(document(addendum, "addendum.json").content)
    assert body["section"] == "notifications"


async def test_an_order_that_ends_without_completing_is_filed_too(
    archive: RunningArchive, stub: archive_pb2_grpc.ArchiveServiceStub, producer: Producer
) -> None:
    """A cancelled order's dossier is sealed when intake says it ended, from what was kept; a
    rejected one likewise; provisioning's word that comes later is an addendum."""
    o, p = order_events_pb2, provisioning_events_pb2
    ids = await work_an_order(producer, "ord-cx", stop_before="provisioning.device_configured")
    ids.append(
        await publish(
            producer,
            "order.cancellation_requested",
            o.OrderCancellationRequested(
                order_id="ord-cx", cancellation_id="CX-2", reason_code="CUSTOMER_CHANGED_MIND"
            ),
            by="intake",
        )
    )
    await caught_up(producer, "ORDER", "PROVISIONING")
    assert await list_all(stub) == []  # not ended yet: nothing sealed
    ended = await publish(
        producer,
        "order.state_changed",
        o.OrderStateChanged(
            order_id="ord-cx",
            business_type="broadband_install",
            from_state=order_pb2.ORDER_STATE_IN_PROGRESS,
            to_state=order_pb2.ORDER_STATE_CANCELLED,
            actor="provisioning",
            reason_code="CANCELLED_BY_CUSTOMER",
        ),
        by="intake",
    )
    sealed = (await dossier(stub, "ord-cx")).dossier
    assert (sealed.kind, sealed.subject) == ("dossier", "ord-cx")
    assert sealed.HasField("retain_until")
    order = json.loads(document(sealed, "order.json").content)
    assert (order["business_type"], order["device_id"], order["voucher_id"]) == (
        "broadband_install",
        "CPE-0001",
        "",
    )
    assert order["created_at"] is not None
    assert [(h["from_state"], h["to_state"], h["reason_code"]) for h in order["history"]] == [
        ("acknowledged", "inProgress", "APPROVED"),
        ("inProgress", "cancelled", "CANCELLED_BY_CUSTOMER"),
    ]
    record = json.loads(document(sealed, "record.json").content)
    assert [e["event_id"] for e in record["events"]] == [*ids, ended]
    assert [e["type"] for e in record["sections"]["cancellation"]] == [
        "order.cancellation_requested"
    ]
    assert record["sections"]["fallout"][0]["fields"]["reason_code"] == "DEVICE_ABNORMAL"

    # Provisioning's account of the rollback, read from its own stream after the seal.
    await publish(
        producer,
        "provisioning.cancellation_completed",
        p.CancellationCompleted(job_id="job-ord-cx", order_id="ord-cx", cancellation_id="CX-2"),
        by="provisioning",
    )

    async def with_addendum() -> archive_pb2.GetDossierResponse:
        reply: archive_pb2.GetDossierResponse = await stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="ord-cx"), metadata=AUDITOR
        )
        return reply

    later = await eventually(with_addendum, lambda r: len(r.addenda) == 1)
    assert later.dossier == sealed
    body = json.loads(document(later.addenda[0], "addendum.json").content)
    assert body["section"] == "cancellation"

    # Rejected at review: filed with the review's events, whatever came before.
    await publish(
        producer,
        "order.created",
        o.OrderCreated(order_id="ord-rj", business_type="iptv", device_id="CPE-0002"),
        by="intake",
    )
    await publish(
        producer,
        "order.state_changed",
        o.OrderStateChanged(
            order_id="ord-rj",
            business_type="iptv",
            from_state=order_pb2.ORDER_STATE_ACKNOWLEDGED,
            to_state=order_pb2.ORDER_STATE_REJECTED,
            actor="reviewer-2",
            reason_code="DOCUMENT_FORGED",
        ),
        by="intake",
    )
    rejected = (await dossier(stub, "ord-rj")).dossier
    order = json.loads(document(rejected, "order.json").content)
    assert order["history"][-1]["to_state"] == "rejected"
    assert order["history"][-1]["actor"] == "reviewer-2"
    # The ending sent again (a re-issue: another event id) seals nothing twice; the log has the
    # two dossiers and the addendum.
    await publish(
        producer,
        "order.state_changed",
        o.OrderStateChanged(
            order_id="ord-rj",
            from_state=order_pb2.ORDER_STATE_ACKNOWLEDGED,
            to_state=order_pb2.ORDER_STATE_REJECTED,
        ),
        by="intake",
    )
    await caught_up(producer, "ORDER", "PROVISIONING")
    assert sorted(r.kind for r in await list_all(stub)) == ["addendum", "dossier", "dossier"]
    chain = await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR)
    assert chain.valid and chain.records_checked == 3


async def orderline(*args: str) -> tuple[int, str]:
    """The real `orderline` command, without blocking the archive serving in this loop."""
    proc = await asyncio.create_subprocess_exec(
        ORDERLINE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode()


async def test_an_auditor_requests_a_purge_from_the_cli_and_another_approves_it(
    clocked: Clocked, producer: Producer
) -> None:
    stub, clock, address = clocked.stub, clocked.clock, clocked.archive.address
    await publish(producer, "order.completed", completed("ord-cli"), by="intake")
    record = (await dossier(stub, "ord-cli")).dossier
    clock.now += timedelta(days=3 * 366)

    code, text = await orderline("dossier", "purge", "--archive", address)
    assert code == 0, text
    assert "requested the purge of dossier ord-cli" in text
    assert "awaits another auditor: orderline dossier purge --approve PR-" in text
    request_id = text.rsplit("--approve ", 1)[1].split()[0]
    code, text = await orderline("dossier", "purge", "--archive", address, "--approve", request_id)
    assert code != 0 and "four-eyes" in text
    assert not (await dossier(stub, "ord-cli")).dossier.HasField("purged_at")

    code, text = await orderline(
        "dossier", "purge", "--archive", address, "--approve", request_id,
        "--token", "auditor-wang-token", "--json",
    )  # fmt: skip
    assert code == 0, text
    reply = json.loads(text)
    assert (reply["requested_by"], reply["approved_by"]) == ("auditor-dev", "auditor-wang")
    assert [p["record_id"] for p in reply["purged"]] == [record.id]
    assert (await dossier(stub, "ord-cli")).dossier.HasField("purged_at")
