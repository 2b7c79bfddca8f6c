"""Outbox and relay against real JetStream and both databases: an event leaves exactly once, and
only when the transaction that wrote it committed."""

from __future__ import annotations

import asyncio

import pytest
from _runtime_support import (
    Schema,
    count_rows,
    make_schema,
    session_units,
    stream_messages,
    wait_until,
)
from nats.js import JetStreamContext
from opentelemetry import trace
from sqlalchemy import update

from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline_devtools.local import NatsServer
from orderline_devtools.testing import new_postgres_database
from orderline_runtime.database import Database
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.relay import OutboxRelay
from orderline_runtime.telemetry import order_scope


def approved(order_id: str) -> order_events_pb2.OrderApproved:
    return order_events_pb2.OrderApproved(order_id=order_id)


async def test_committed_event_is_published_once_with_its_id_and_trace_context(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema, span_exporter: object
) -> None:
    outbox = Outbox("intake", schema.outbox)
    relay = OutboxRelay(db, outbox, bus)
    with trace.get_tracer("test").start_as_current_span("create order"), order_scope("O-1"):
        async with session_units(db, outbox)() as uow:
            event_id = uow.emit(approved("O-1"))

    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0

    msgs = await stream_messages(js, "ORDER")
    assert len(msgs) == 1
    msg = msgs[0]
    assert msg.subject == "orderline.order.approved"
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == event_id
    assert msg.headers["traceparent"].startswith("00-")
    assert "orderline.order_id=O-1" in msg.headers["baggage"]
    env = envelope_pb2.Envelope()
    env.ParseFromString(msg.data or b"")
    assert (env.id, env.type, env.order_id, env.producer) == (
        event_id,
        "order.approved",
        "O-1",
        "intake",
    )
    payload = order_events_pb2.OrderApproved()
    assert env.payload.Unpack(payload)
    assert payload.order_id == "O-1"
    assert await count_rows(db, schema.outbox, schema.outbox.c.sent_at.is_(None)) == 0


async def test_rolled_back_transaction_publishes_nothing(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> None:
    outbox = Outbox("intake", schema.outbox)
    relay = OutboxRelay(db, outbox, bus)
    with pytest.raises(RuntimeError, match="validation failed"):
        async with session_units(db, outbox)() as uow:
            uow.emit(approved("O-2"))
            raise RuntimeError("validation failed after the event was written")

    assert await relay.relay_once() == 0
    assert await count_rows(db, schema.outbox) == 0
    assert not outbox.written.is_set()
    assert await stream_messages(js, "ORDER") == []


async def test_republishing_after_a_crash_between_publish_and_mark_is_dropped_by_jetstream(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> None:
    outbox = Outbox("intake", schema.outbox)
    relay = OutboxRelay(db, outbox, bus)
    async with session_units(db, outbox)() as uow:
        for n in range(3):
            uow.emit(approved(f"O-{n}"))
    assert await relay.relay_once() == 3

    # The relay published but crashed before it marked the rows sent.
    async with db.transaction() as session:
        await session.execute(update(schema.outbox).values(sent_at=None))
    assert await relay.relay_once() == 3

    msgs = await stream_messages(js, "ORDER")
    assert len(msgs) == 3
    assert len({m.headers["Nats-Msg-Id"] for m in msgs if m.headers}) == 3
    assert await count_rows(db, schema.outbox, schema.outbox.c.sent_at.is_(None)) == 0


async def test_relay_loop_publishes_soon_after_commit_and_stops_with_a_final_pass(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> None:
    outbox = Outbox("intake", schema.outbox)
    # A long idle poll: only the commit signal can make the relay publish quickly.
    relay = OutboxRelay(db, outbox, bus, idle_poll_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with session_units(db, outbox)() as uow:
            uow.emit(approved("O-3"))

        async def published() -> bool:
            return len(await stream_messages(js, "ORDER")) == 1

        await wait_until(published, within=5, what="the relay to publish after commit")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert await count_rows(db, schema.outbox, schema.outbox.c.sent_at.is_(None)) == 0


async def test_the_running_relay_leaves_marking_to_the_next_write_or_marks_when_idle(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> None:
    """On SQLite the relay publishes and the service's next committed write marks the rows
    sent (a rolled-back one does not); with nothing else writing, the relay marks them itself
    when a pass finds nothing new. Either way each event is published once."""
    if db.is_postgres:
        pytest.skip("on PostgreSQL the relay marks in the transaction that claimed the rows")
    outbox = Outbox("intake", schema.outbox)
    unsent = schema.outbox.c.sent_at.is_(None)

    async def published(n: int) -> bool:
        return len(await stream_messages(js, "ORDER")) == n

    async def unsent_rows() -> int:
        return await count_rows(db, schema.outbox, unsent)

    # A long idle poll: the relay makes no pass of its own after publishing.
    stop = asyncio.Event()
    relay = OutboxRelay(db, outbox, bus, idle_poll_seconds=30)
    task = asyncio.create_task(relay.run(stop))
    try:
        async with session_units(db, outbox)() as uow:
            uow.emit(approved("O-10"))
        await wait_until(lambda: published(1), within=5, what="the relay to publish")
        assert await unsent_rows() == 1

        with pytest.raises(RuntimeError):
            async with session_units(db, outbox)() as uow:
                raise RuntimeError("this write rolls back")
        assert await unsent_rows() == 1

        async with session_units(db, outbox)() as uow:
            pass  # a write of the service's own, with no events
        assert await unsent_rows() == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    # A short idle poll and nothing else writing: the relay marks on its own.
    stop = asyncio.Event()
    relay = OutboxRelay(db, outbox, bus, idle_poll_seconds=0.1)
    task = asyncio.create_task(relay.run(stop))
    try:
        async with session_units(db, outbox)() as uow:
            uow.emit(approved("O-11"))

        async def all_marked() -> bool:
            return await published(2) and await unsent_rows() == 0

        await wait_until(all_marked, within=5, what="the idle relay to mark the row itself")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert await published(2)


async def test_a_payload_outside_the_catalogue_is_refused_when_emitted(
    db: Database, schema: Schema
) -> None:
    """Refused at emit time; otherwise the row could never be published and would block
    the relay's ordered batches forever."""
    outbox = Outbox("intake", schema.outbox)
    with pytest.raises(ValueError, match="not an event in the catalogue"):
        async with session_units(db, outbox)() as uow:
            uow.emit(envelope_pb2.DeadLetter(reason="not an event"))
    assert await count_rows(db, schema.outbox) == 0


async def test_a_service_may_not_emit_another_services_event(db: Database, schema: Schema) -> None:
    """The catalogue names one owner per stream: archive cannot publish order.approved."""
    outbox = Outbox("archive", schema.outbox)
    with pytest.raises(ValueError, match="intake owns it"):
        async with session_units(db, outbox)() as uow:
            uow.emit(approved("O-5"))
    assert await count_rows(db, schema.outbox) == 0


async def test_two_relays_on_one_postgres_outbox_publish_each_event_exactly_once(
    postgres_server: object, nats_server: NatsServer, js: JetStreamContext
) -> None:
    schema = make_schema()
    url = new_postgres_database(postgres_server)  # type: ignore[arg-type]
    db_a, db_b = Database(url), Database(url)
    bus_a = EventBus(nats_server.url, name="relay-a")
    bus_b = EventBus(nats_server.url, name="relay-b")
    try:
        async with db_a.transaction() as conn:
            await conn.run_sync(schema.metadata.create_all)
        await asyncio.gather(bus_a.connect(), bus_b.connect())
        published: dict[str, list[str]] = {"a": [], "b": []}
        for key, bus in (("a", bus_a), ("b", bus_b)):
            original = bus.publish

            async def counting(
                subject: str,
                data: bytes,
                headers: dict[str, str],
                *,
                _key: str = key,
                _original: object = original,
            ) -> None:
                published[_key].append(headers["Nats-Msg-Id"])
                await _original(subject, data, headers)  # type: ignore[operator]

            bus.publish = counting  # type: ignore[method-assign]
        outbox = Outbox("intake", schema.outbox)
        relays = [
            OutboxRelay(db_a, outbox, bus_a, batch_size=25, idle_poll_seconds=0.05),
            OutboxRelay(db_b, outbox, bus_b, batch_size=25, idle_poll_seconds=0.05),
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(r.run(stop)) for r in relays]
        total = 300
        # Written while both relays run, in many small transactions.
        for start in range(0, total, 10):
            async with session_units(db_a, outbox)() as uow:
                for n in range(start, start + 10):
                    uow.emit(approved(f"O-{n}"))

        async def all_sent() -> bool:
            return await count_rows(db_a, schema.outbox, schema.outbox.c.sent_at.is_(None)) == 0

        await wait_until(all_sent, within=20, what="every outbox row to be sent")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)

        # SKIP LOCKED: no row went out through both relays (JetStream would hide that).
        assert len(published["a"]) + len(published["b"]) == total
        assert not set(published["a"]) & set(published["b"])
        info = await js.stream_info("ORDER")
        assert info.state.messages == total
        msgs = await stream_messages(js, "ORDER")
        assert len({m.headers["Nats-Msg-Id"] for m in msgs if m.headers}) == total
    finally:
        await bus_a.drain()
        await bus_b.drain()
        await db_a.dispose()
        await db_b.dispose()


async def test_events_leave_in_the_order_they_were_written(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> None:
    """One order's created, state_changed and approved must reach consumers in that order."""
    outbox = Outbox("intake", schema.outbox)
    relay = OutboxRelay(db, outbox, bus, batch_size=100)
    written = []
    async with session_units(db, outbox)() as uow:
        for n in range(150):
            written.append(uow.emit(approved(f"O-{n}")))
    assert await relay.relay_once() == 100
    assert await relay.relay_once() == 50
    msgs = await stream_messages(js, "ORDER")
    assert [m.headers["Nats-Msg-Id"] for m in msgs if m.headers] == written
