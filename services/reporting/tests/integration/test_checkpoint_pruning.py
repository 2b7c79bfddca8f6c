"""The projection's checkpoints are pruned to the last N and the last of each hour of event time
(ORDERLINE_REPORTING_CHECKPOINTS_KEPT), on SQLite and PostgreSQL, with events from real
JetStream; a rebuild still verifies the projection against the checkpoints left."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import grpc
from reporting_harness import OE, Producer, auth

from orderline.reporting.v1 import reporting_pb2 as pb
from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_reporting.adapters.tables import projection_checkpoints
from orderline_reporting.bootstrap import build
from orderline_reporting.settings import ReportingSettings
from orderline_runtime.database import Database


def settings(db_url: str, nats_url: str, tmp_path: Path, kept: int) -> ReportingSettings:
    return ReportingSettings(
        service_name="reporting",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_url,
        trace_dir=tmp_path / "traces",
        shutdown_grace_seconds=2,
        reporting_checkpoints_kept=kept,
    )


async def checkpoint_numbers(db_url: str) -> list[int]:
    db = Database(db_url)
    try:
        async with db.reading() as conn:
            rows = await conn.execute(
                projection_checkpoints.select().order_by(projection_checkpoints.c.number)
            )
            return [int(r.number) for r in rows]
    finally:
        await db.dispose()


async def test_checkpoints_are_pruned_to_the_last_n_and_one_per_hour_of_event_time(
    db_url: str, nats_server: NatsServer, tmp_path: Path, producer: Producer
) -> None:
    manager = auth("manager")
    service = build(settings(db_url, nats_server.url, tmp_path, kept=1000))
    async with serving(service) as address, grpc.aio.insecure_channel(address) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)

        async def applied() -> int:
            reply = await stub.GetProjectionDigest(
                pb.GetProjectionDigestRequest(), metadata=manager
            )
            return int(reply.events_applied)

        # Two events in each of three hours of the producers' time, each applied alone: one
        # checkpoint each, numbered 1 to 6.
        for n, (hour, minute) in enumerate([(8, 0), (8, 30), (9, 0), (9, 30), (10, 0), (10, 30)]):
            producer.clock = datetime(2026, 5, 9, hour, minute, tzinfo=UTC)
            order_id = f"ord-{n}"
            created = OE.OrderCreated(order_id=order_id, business_type="iptv")
            await producer.publish(producer.record("order.created", created, order_id=order_id))
            await eventually(applied, lambda count, n=n: count == n + 1, 30)
        assert await checkpoint_numbers(db_url) == [1, 2, 3, 4, 5, 6]

    # Restarted keeping 2: the pruning runs at start.
    service = build(settings(db_url, nats_server.url, tmp_path, kept=2))
    async with serving(service) as address, grpc.aio.insecure_channel(address) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        # The last two (5, 6) and the last of each hour (2 for 08:00, 4 for 09:00, 6 for 10:00).
        await eventually(
            lambda: checkpoint_numbers(db_url), lambda numbers: numbers == [2, 4, 5, 6]
        )

        digest = await stub.GetProjectionDigest(
            pb.GetProjectionDigestRequest(recompute=True), metadata=manager
        )
        assert digest.checkpoint == 6 and digest.events_applied == 6
        assert digest.recomputed_digest == digest.digest
        rebuilt = await stub.RebuildProjections(
            pb.RebuildProjectionsRequest(), metadata=manager, timeout=60
        )
        assert rebuilt.consistent
        assert (rebuilt.checkpoints_compared, rebuilt.checkpoints_matched) == (4, 4)
        assert rebuilt.digest == digest.digest

        # Numbering goes on after the pruned ones: the next transaction records checkpoint 7.
        producer.clock = datetime(2026, 5, 9, 11, 0, tzinfo=UTC)
        created = OE.OrderCreated(order_id="ord-6", business_type="iptv")
        await producer.publish(producer.record("order.created", created, order_id="ord-6"))

        async def head() -> int:
            reply = await stub.GetProjectionDigest(
                pb.GetProjectionDigestRequest(), metadata=manager
            )
            return int(reply.checkpoint)

        await eventually(head, lambda number: number == 7)
        assert await checkpoint_numbers(db_url) == [2, 4, 5, 6, 7]
