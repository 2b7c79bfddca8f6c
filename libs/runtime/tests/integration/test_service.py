"""The service lifecycle: health follows the database and NATS, and a stop finishes the message in
hand (committed and acked), hands the rest back, and returns within the grace period."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
from _runtime_support import Schema, count_rows, make_schema, session_units, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js import JetStreamContext
from sqlalchemy import insert, select

from orderline.events.v1 import order_events_pb2
from orderline_devtools.local import NatsServer, PostgresServer
from orderline_devtools.testing import serving
from orderline_runtime.database import Database, SqlConnection
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.consumer import Handler, HandlerFn
from orderline_runtime.messaging.envelope import ReceivedEvent, build_envelope
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.service import Service
from orderline_runtime.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent.parent / "fixtures" / "migrations"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ORDER = catalogue().for_payload(order_events_pb2.OrderApproved).stream


def build(
    schema: Schema, db_url: str, nats_url: str, tmp_path: Path, **overrides: Any
) -> Service[SqlConnection]:
    settings = ServiceSettings(
        service_name="provisioning",
        grpc_port=0,
        database_url=db_url,
        nats_url=nats_url,
        trace_dir=tmp_path / "traces",
        **overrides,
    )
    return Service(
        settings,
        metadata=schema.metadata,
        migrations=MIGRATIONS,
        policy={},
        repositories=lambda session: session,
    )


async def health_status(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(reply.status)


async def test_health_is_not_serving_until_database_and_nats_are_ready_nor_after_stop(
    postgres_server: PostgresServer | None, tmp_path: Path
) -> None:
    if postgres_server is None:  # DATABASE_URL given: no server of ours to create databases on
        return
    schema = make_schema()
    nats = NatsServer(tmp_path / "nats")  # not started yet
    database = "late_" + new_id().replace("-", "")[:24]
    service = build(schema, postgres_server.url(database), nats.url, tmp_path)
    task = asyncio.create_task(service.run())
    try:

        async def listening() -> bool:
            return service.grpc.port != 0

        await wait_until(listening, within=5, what="the gRPC port")
        port = service.grpc.port
        # Neither the database (not created yet) nor NATS (not started) is there.
        assert await health_status(port) == NOT_SERVING

        nats.start()

        async def nats_ready() -> bool:
            return service.bus.ready.is_set()

        await wait_until(nats_ready, within=10, what="NATS to connect")
        assert await health_status(port) == NOT_SERVING  # the database is still missing

        postgres_server.create_database(database)

        async def is_serving() -> bool:
            return await health_status(port) == SERVING

        await wait_until(is_serving, within=15, what="SERVING")

        # Probes watching health see NOT_SERVING as soon as the stop begins.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == SERVING
            service.stop_event.set()
            reply = await asyncio.wait_for(watch.read(), timeout=5)
            assert reply.status == NOT_SERVING
            watch.cancel()
        await asyncio.wait_for(task, timeout=10)
    finally:
        service.stop_event.set()
        await asyncio.wait_for(task, timeout=15)
        nats.stop()


async def test_a_readiness_check_that_raises_does_not_end_the_health_loop(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    service = build(make_schema(), db_url, nats_server.url, tmp_path)
    state = {"calls": 0, "ready": True}

    def check() -> bool:
        state["calls"] += 1
        if state["calls"] == 1:
            raise RuntimeError("a readiness check that broke once")
        return state["ready"]

    service.add_readiness(check)
    # SERVING at all means the loop went on after the check raised.
    async with serving(service):
        port = service.grpc.port
        state["ready"] = False

        async def not_serving() -> bool:
            return await health_status(port) == NOT_SERVING

        await wait_until(not_serving, within=10, what="NOT_SERVING once the check says so")


async def test_stop_finishes_the_message_in_hand_and_hands_back_the_rest(
    db_url: str, nats_server: NatsServer, bus: EventBus, js: JetStreamContext, tmp_path: Path
) -> None:
    schema = make_schema()
    started = asyncio.Event()
    seen: list[str] = []

    def slow_handler(delay: float) -> HandlerFn:
        async def handle(
            uow: Any, event: ReceivedEvent, payload: order_events_pb2.OrderApproved
        ) -> None:
            seen.append(payload.order_id)
            started.set()
            await asyncio.sleep(delay)
            await uow.repos.execute(
                insert(schema.effects).values(event_id=event.id, note=payload.order_id)
            )

        return handle

    # Both events wait in the stream before the service starts: one fetch takes them both.
    for order_id in ("O-1", "O-2"):
        env = build_envelope(
            "order.approved",
            order_events_pb2.OrderApproved(order_id=order_id),
            producer="intake",
            order_id=order_id,
        )
        await js.publish(
            "orderline.order.approved", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )

    grace = 5.0
    service = build(schema, db_url, nats_server.url, tmp_path, shutdown_grace_seconds=grace)
    service.consume([Handler(order_events_pb2.OrderApproved, slow_handler(1.0))])
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(started.wait(), timeout=15)
    finally:
        stop_at = loop.time()
        service.stop_event.set()
        await asyncio.wait_for(task, timeout=2 * grace)
    took = loop.time() - stop_at
    assert took < grace
    assert seen == ["O-1"]
    # The service gives its signals back when it returns.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    db = Database(db_url)
    try:
        async with db.transaction() as session:
            notes = (await session.execute(select(schema.effects.c.note))).scalars().all()
        assert notes == ["O-1"]
        assert await count_rows(db, schema.inbox) == 1
    finally:
        await db.dispose()

    info = await js.consumer_info(ORDER.name, "provisioning")
    assert info.ack_floor is not None and info.ack_floor.stream_seq == 1  # O-1 acked

    # Restarted, the service handles O-2 only: O-1 was acked, so it is never delivered again.
    seen.clear()
    started.clear()
    service = build(schema, db_url, nats_server.url, tmp_path)
    service.consume([Handler(order_events_pb2.OrderApproved, slow_handler(0))])
    async with serving(service):

        async def settled() -> bool:
            info = await js.consumer_info(ORDER.name, "provisioning")
            return info.num_ack_pending == 0 and info.num_pending == 0 and bool(seen)

        await wait_until(settled, within=10, what="O-2 to be handled after the restart")
    info = await js.consumer_info(ORDER.name, "provisioning")
    assert info.delivered is not None and info.delivered.consumer_seq == 3  # O-1 once, O-2 twice
    assert seen == ["O-2"]


async def test_stop_before_nats_is_reachable_returns_promptly(tmp_path: Path) -> None:
    schema = make_schema()
    never_started = NatsServer(tmp_path / "nats")
    service = build(
        schema,
        f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}",
        never_started.url,
        tmp_path,
        shutdown_grace_seconds=10,
    )

    async def nothing(_u: Any, _e: ReceivedEvent, _p: Any) -> None:
        return None

    service.consume([Handler(order_events_pb2.OrderApproved, nothing)])
    service.add_task("worker", lambda stop: stop.wait())  # type: ignore[arg-type,return-value]
    task = asyncio.create_task(service.run())

    async def migrated() -> bool:
        return service._migrated.is_set()

    await wait_until(migrated, within=10, what="the migration")
    loop = asyncio.get_running_loop()
    started = loop.time()
    service.stop_event.set()
    await asyncio.wait_for(task, timeout=15)
    # Loops still waiting for NATS stop at once instead of being cancelled after the grace.
    assert loop.time() - started < 3


async def test_nats_outage_makes_the_service_not_serving_and_events_wait_in_the_outbox(
    tmp_path: Path,
) -> None:
    schema = make_schema()
    nats = NatsServer(tmp_path / "nats").start()
    handled: list[str] = []

    async def on_approved(
        uow: Any, event: ReceivedEvent, payload: order_events_pb2.OrderApproved
    ) -> None:
        handled.append(payload.order_id)

    # A write that waited half a second for SQLite's lock would fail: the relay must never
    # hold the lock while NATS is away.
    service = build(
        schema,
        f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}",
        nats.url,
        tmp_path,
        database_lock_timeout_seconds=0.5,
    )
    service.consume([Handler(order_events_pb2.OrderApproved, on_approved)])
    intake_units = session_units(service.db, Outbox("intake", service.outbox_table))
    try:
        async with serving(service) as address:
            port = int(address.rsplit(":", 1)[1])

            async def status_is(expected: int) -> bool:
                return await health_status(port) == expected

            async def write(order_id: str) -> None:
                # Written as intake (the event's owner) into this service's outbox table.
                async with intake_units() as uow:
                    uow.emit(order_events_pb2.OrderApproved(order_id=order_id))

            async def handled_all(*order_ids: str) -> bool:
                return handled == list(order_ids)

            await write("O-1")
            await wait_until(lambda: handled_all("O-1"), within=10, what="O-1 round trip")

            nats.stop()
            await wait_until(lambda: status_is(NOT_SERVING), within=10, what="NOT_SERVING")
            # Not ready, but alive: a liveness probe must not restart it for an outage.
            assert await health_status(port, "liveness") == SERVING
            await write("O-2")  # the state change commits; its event waits in the outbox
            # While the event waits, the relay must not hold SQLite's write lock on it: the
            # service's other writes go on at full speed.
            for n in range(3, 6):
                await write(f"O-{n}")
                await asyncio.sleep(0.3)

            nats.start()  # same port and store
            await wait_until(lambda: status_is(SERVING), within=15, what="SERVING again")
            await wait_until(
                lambda: handled_all("O-1", "O-2", "O-3", "O-4", "O-5"),
                within=15,
                what="the events written during the outage",
            )
    finally:
        nats.stop()
