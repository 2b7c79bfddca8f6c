"""`RebuildProjections(replace=true)` on real NATS JetStream, SQLite and PostgreSQL, over real
gRPC: a live projection damaged behind the projector's back is replaced by the rebuilt one,
and the events published before, while and after it is replaced are each applied once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from reporting_harness import (
    HELD,
    IP,
    MANAGER,
    ORDERS,
    PE,
    REJ,
    Producer,
    auth,
    by_state,
    order_run,
    positions,
)
from sqlalchemy import text

from orderline.events.v1 import archive_events_pb2
from orderline.reporting.v1 import reporting_pb2 as pb
from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_reporting.bootstrap import build
from orderline_reporting.settings import ReportingSettings
from orderline_runtime.database import Database


class Interleaving:
    """What happens between the rebuild's catch-up and the swap (the service's `before_swap`):
    one order's events published and waited for until the live run has applied them (so the
    swap finds events the live projection has and the replay does not yet), then another's
    published without waiting (they race with the swap)."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.stub: reporting_pb2_grpc.ReportingServiceStub | None = None
        self.ran = False

    async def __call__(self) -> None:
        assert self.stub is not None
        p = self.producer
        await p.publish(*order_run(p, "ord-during", "iptv", [IP, HELD]))
        await applied(self.stub, p.published)
        await p.publish(*order_run(p, "ord-racing", "fixed_line", [REJ]))
        self.ran = True


async def applied(
    stub: reporting_pb2_grpc.ReportingServiceStub, events: int
) -> pb.GetProjectionDigestResponse:
    """The live digest once `events` events have been applied, recomputed from every row."""

    async def get() -> pb.GetProjectionDigestResponse:
        reply: pb.GetProjectionDigestResponse = await stub.GetProjectionDigest(
            pb.GetProjectionDigestRequest(recompute=True), metadata=MANAGER
        )
        return reply

    return await eventually(get, lambda r: r.events_applied >= events, 30, "events applied")


@pytest_asyncio.fixture
async def live(
    db_url: str, nats_server: NatsServer, tmp_path: Path, producer: Producer
) -> AsyncIterator[tuple[reporting_pb2_grpc.ReportingServiceStub, Interleaving]]:
    interleaving = Interleaving(producer)
    service = build(
        ReportingSettings(
            service_name="reporting",
            grpc_port=free_port(),
            database_url=db_url,
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            shutdown_grace_seconds=2,
        ),
        before_swap=interleaving,
    )
    async with serving(service) as address, grpc.aio.insecure_channel(address) as channel:
        interleaving.stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        yield interleaving.stub, interleaving


async def damage(db_url: str, *statements: str) -> None:
    """Changes the live projection's rows directly, as a faulty script or a hand edit would."""
    db = Database(db_url)
    try:
        async with db.transaction() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await db.dispose()


async def order_report(stub: reporting_pb2_grpc.ReportingServiceStub) -> Any:
    return await stub.GetOrderReport(pb.GetOrderReportRequest(), metadata=MANAGER)


async def test_a_damaged_live_projection_is_replaced_and_every_event_is_applied_once(
    db_url: str,
    live: tuple[reporting_pb2_grpc.ReportingServiceStub, Interleaving],
    producer: Producer,
) -> None:
    stub, interleaving = live
    envs = []
    for order_id, (business_type, path, _) in ORDERS.items():
        envs += order_run(producer, order_id, business_type, path)
    ids: dict[str, Any] = {"job_id": "job-1", "order_id": "ord-1"}
    envs.append(producer.record("provisioning.job_started", PE.JobStarted(**ids), order_id="ord-1"))
    envs.append(
        producer.record(
            "archive.dossier_sealed",
            archive_events_pb2.DossierSealed(
                dossier_id="dos-1", order_id="ord-1", sequence=1, content_hash="a" * 64
            ),
            order_id="ord-1",
        )
    )
    await producer.publish(*envs)
    before = await applied(stub, producer.published)
    assert before.recomputed_digest == before.digest
    right = by_state(await order_report(stub))
    assert right == {"completed": 2, "held": 1, "inProgress": 1, "rejected": 1, "acknowledged": 1}

    await damage(
        db_url,
        "UPDATE orders SET state = 'cancelled' WHERE order_id = 'ord-1'",
        "UPDATE event_counts SET count = count + 5 WHERE event_type = 'order.created'",
        "DELETE FROM order_facts WHERE order_id = 'ord-2'",
    )
    damaged = await applied(stub, producer.published)
    assert damaged.recomputed_digest != damaged.digest
    report = await order_report(stub)
    assert by_state(report)["cancelled"] == 1
    assert report.events_projected == producer.published + 5

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.RebuildProjections(
            pb.RebuildProjectionsRequest(replace=True), metadata=auth("service")
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    rebuilt = await stub.RebuildProjections(
        pb.RebuildProjectionsRequest(replace=True), metadata=auth("auditor"), timeout=60
    )
    assert rebuilt.replaced
    assert interleaving.ran
    # The replay found nothing wrong at the checkpoints (the rows were changed behind the
    # projector's back, not its digest), yet the rows it put in place are the right ones.
    assert rebuilt.live_digest == before.digest
    # Published after the swap: the live consumers go on from the replaced projection.
    after = order_run(producer, "ord-after", "broadband_install", [IP])
    await producer.publish(*after)

    final = await applied(stub, producer.published)
    assert final.recomputed_digest == final.digest
    report = await order_report(stub)
    # Each event applied once: none lost with the old projection, none applied twice.
    assert report.events_projected == producer.published
    assert final.events_applied == producer.published
    assert by_state(report) == {"completed": 2, "held": 2, "inProgress": 2, "rejected": 2,
                                "acknowledged": 1}  # fmt: skip
    assert report.total_orders == len(ORDERS) + 3
    assert report.dossiers_sealed == 1
    streams = {s: (seq, n) for s, (seq, n) in positions(final).items()}
    for name, (sequence, events) in streams.items():
        last = (await producer.js.stream_info(name)).state.last_seq
        assert (sequence, events) == (last, last), name

    # A second rebuild, verifying only, replays every stream into the same rows.
    check = await stub.RebuildProjections(
        pb.RebuildProjectionsRequest(), metadata=auth("manager"), timeout=60
    )
    assert check.consistent, check.mismatches
    assert not check.replaced
    assert check.digest == final.digest
    assert positions(check) == positions(final)
    assert check.checkpoints_matched >= 1


async def test_a_rebuild_without_replace_changes_nothing(
    db_url: str,
    live: tuple[reporting_pb2_grpc.ReportingServiceStub, Interleaving],
    producer: Producer,
) -> None:
    stub, interleaving = live
    await producer.publish(*order_run(producer, "ord-1", "iptv", [IP]))
    await applied(stub, producer.published)
    await damage(db_url, "UPDATE orders SET state = 'cancelled' WHERE order_id = 'ord-1'")
    damaged = await applied(stub, producer.published)

    rebuilt = await stub.RebuildProjections(
        pb.RebuildProjectionsRequest(), metadata=auth("manager"), timeout=60
    )
    assert not rebuilt.replaced
    assert not interleaving.ran
    after = await applied(stub, producer.published)
    assert after.recomputed_digest == damaged.recomputed_digest != after.digest
    assert by_state(await order_report(stub)) == {"cancelled": 1}
