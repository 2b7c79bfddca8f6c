"""Durable consumer with an inbox against real JetStream and both databases: each event's effect
is applied once, acked only after commit, retried when the failure may pass, and dead-lettered
with its reason when it never can."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from _runtime_support import Schema, count_rows, dead_letters, session_units, wait_until
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Connection, Engine

from orderline.events.v1 import order_events_pb2
from orderline_runtime.database import Database
from orderline_runtime.errors import PoisonMessage, Unavailable
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.consumer import EventConsumer, Handler, HandlerFn
from orderline_runtime.messaging.envelope import ReceivedEvent, build_envelope
from orderline_runtime.messaging.outbox import Outbox

CONSUMER = "provisioning"
ORDER = catalogue().for_payload(order_events_pb2.OrderApproved).stream


@dataclass
class Calls:
    """What the test handler saw: one entry per call."""

    deliveries: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)


@dataclass
class Harness:
    db: Database
    bus: EventBus
    js: JetStreamContext
    schema: Schema
    consumers: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)

    def start(self, fn: HandlerFn, **options: Any) -> EventConsumer:
        consumer = EventConsumer(
            service=CONSUMER,
            stream=ORDER,
            handlers=[Handler(order_events_pb2.OrderApproved, fn)],
            unit_of_work=session_units(self.db, Outbox(CONSUMER, self.schema.outbox)),
            inbox=self.schema.inbox,
            bus=self.bus,
            **{"backoff_seconds": (0.05,), **options},
        )
        stop = asyncio.Event()
        self.consumers.append((stop, asyncio.create_task(consumer.run(stop))))
        return consumer

    async def stop(self) -> None:
        for stop, _ in self.consumers:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*(t for _, t in self.consumers)), timeout=10)
        self.consumers.clear()

    async def publish(
        self, data: bytes, msg_id: str, subject: str = "orderline.order.approved"
    ) -> None:
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

    async def info(self) -> ConsumerInfo:
        return await self.js.consumer_info(ORDER.name, CONSUMER)

    async def settle(self, delivered: int, within: float = 10.0) -> ConsumerInfo:
        """Waits until `delivered` stream messages were delivered and none awaits an ack."""

        async def done() -> bool:
            try:
                info = await self.info()
            except NotFoundError:  # the consumer task has not declared it yet
                return False
            return (
                info.ack_floor is not None
                and info.ack_floor.stream_seq == delivered
                and info.num_ack_pending == 0
                and info.num_pending == 0
            )

        await wait_until(done, within=within, what=f"{delivered} messages to be settled")
        return await self.info()

    async def effects(self) -> list[str]:
        async with self.db.transaction() as session:
            result = await session.execute(
                select(self.schema.effects.c.note).order_by(self.schema.effects.c.id)
            )
            return [str(n) for n in result.scalars()]


@pytest.fixture
async def harness(
    db: Database, bus: EventBus, js: JetStreamContext, schema: Schema
) -> AsyncIterator[Harness]:
    h = Harness(db, bus, js, schema)
    yield h
    await h.stop()


def envelope_bytes(
    order_id: str = "O-1", event_type: str = "order.approved", payload: Any = None
) -> tuple[str, bytes]:
    env = build_envelope(
        event_type,
        payload or order_events_pb2.OrderApproved(order_id=order_id),
        producer="intake",
        order_id=order_id,
    )
    return env.id, env.SerializeToString()


def recording_handler(
    schema: Schema,
    calls: Calls,
    then: Callable[[int], Awaitable[None]] | None = None,
) -> HandlerFn:
    """Writes a row that is NOT idempotent by itself (one per call), then runs `then`."""

    async def handle(
        uow: Any, event: ReceivedEvent, payload: order_events_pb2.OrderApproved
    ) -> None:
        assert payload.order_id == event.order_id
        calls.event_ids.append(event.id)
        call = len(calls.event_ids)
        await uow.repos.execute(
            insert(schema.effects).values(event_id=event.id, note=f"{payload.order_id}#{call}")
        )
        if then is not None:
            await then(call)

    return handle


async def test_same_event_delivered_twice_is_applied_once(harness: Harness, schema: Schema) -> None:
    calls = Calls()
    harness.start(recording_handler(schema, calls))
    event_id, data = envelope_bytes("O-1")
    # Two stream messages with the same envelope: JetStream keeps both, the inbox must not.
    await harness.publish(data, "copy-1")
    await harness.publish(data, "copy-2")

    await harness.settle(delivered=2)
    assert calls.event_ids == [event_id]
    assert await harness.effects() == ["O-1#1"]
    assert await count_rows(harness.db, schema.inbox) == 1


async def test_transient_failure_is_nacked_rolled_back_and_succeeds_on_redelivery(
    harness: Harness, schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []

    def on_commit(_conn: Connection) -> None:
        order.append("commit")

    original_ack = Msg.ack

    async def recording_ack(self: Msg) -> None:
        order.append("ack")
        await original_ack(self)

    monkeypatch.setattr(Msg, "ack", recording_ack)
    event.listen(Engine, "commit", on_commit)
    try:
        calls = Calls()

        async def fail_first(call: int) -> None:
            order.append(f"handler#{call}")
            if call == 1:
                raise Unavailable("device agent did not answer")

        harness.start(recording_handler(schema, calls, fail_first))
        _, data = envelope_bytes("O-2")
        await harness.publish(data, "m-1")
        info = await harness.settle(delivered=1)
    finally:
        event.remove(Engine, "commit", on_commit)

    assert len(calls.event_ids) == 2
    assert info.num_redelivered == 0  # the redelivery was acked
    # The first attempt's row was rolled back with its transaction.
    assert await harness.effects() == ["O-2#2"]
    # Acked only once, and only after the transaction that applied it committed.
    assert order.count("ack") == 1
    assert order.index("ack") > order.index("handler#2")
    assert "commit" in order[order.index("handler#2") : order.index("ack")]


async def test_malformed_messages_are_dead_lettered_and_the_next_good_one_is_handled(
    harness: Harness, schema: Schema, js: JetStreamContext
) -> None:
    calls = Calls()
    harness.start(recording_handler(schema, calls))
    garbage = b"\xff\xfe\x00 definitely not protobuf \x81"
    _, wrong_type = envelope_bytes("O-3", event_type="order.created")
    _, wrong_payload = envelope_bytes("O-4", payload=order_events_pb2.OrderCreated(order_id="O-4"))
    good_id, good = envelope_bytes("O-5")
    await harness.publish(garbage, "bad-1")
    await harness.publish(wrong_type, "bad-2")
    await harness.publish(wrong_payload, "bad-3")
    await harness.publish(good, "good")

    await harness.settle(delivered=4)
    assert calls.event_ids == [good_id]
    assert await harness.effects() == ["O-5#1"]

    letters = await dead_letters(js)
    assert [letter.original for letter in letters] == [garbage, wrong_type, wrong_payload]
    for letter in letters:
        assert letter.consumer == CONSUMER
        assert letter.stream == "ORDER"
        assert letter.subject == "orderline.order.approved"
        assert letter.deliveries == 1
    reasons = [letter.reason for letter in letters]
    assert "Envelope" in reasons[0] or "envelope lacks" in reasons[0]
    assert "'order.created' does not match subject 'orderline.order.approved'" in reasons[1]
    assert "orderline.events.v1.OrderCreated" in reasons[2]
    assert "orderline.events.v1.OrderApproved" in reasons[2]
    assert await count_rows(harness.db, schema.inbox) == 1


async def test_handler_raising_poison_message_is_dead_lettered_without_retry(
    harness: Harness, schema: Schema, js: JetStreamContext
) -> None:
    calls = Calls()

    async def reject(_call: int) -> None:
        raise PoisonMessage("device CPE-9999 is not in the catalogue")

    harness.start(recording_handler(schema, calls, reject))
    _, data = envelope_bytes("O-6")
    await harness.publish(data, "m-1")

    await harness.settle(delivered=1)
    letters = await dead_letters(js)
    assert len(letters) == 1
    assert letters[0].reason == "PoisonMessage: device CPE-9999 is not in the catalogue"
    assert letters[0].original == data
    assert len(calls.event_ids) == 1
    assert await harness.effects() == []
    assert await count_rows(harness.db, schema.inbox) == 0


async def test_handler_failing_transiently_every_time_is_dead_lettered_after_max_deliver(
    harness: Harness, schema: Schema, js: JetStreamContext
) -> None:
    calls = Calls()

    async def always_down(_call: int) -> None:
        raise Unavailable("gateway down")

    harness.start(recording_handler(schema, calls, always_down), max_deliver=3)
    _, data = envelope_bytes("O-7")
    await harness.publish(data, "m-1")

    await harness.settle(delivered=1)
    letters = await dead_letters(js)
    assert len(letters) == 1
    assert letters[0].deliveries == 3
    assert "gave up after 3 deliveries" in letters[0].reason
    assert "gateway down" in letters[0].reason
    assert len(calls.event_ids) == 3
    assert await harness.effects() == []


async def test_handler_integrity_error_is_retried_not_mistaken_for_a_duplicate(
    harness: Harness, schema: Schema, js: JetStreamContext
) -> None:
    """Only the inbox's own key means "another replica got there first"; a constraint the
    handler's effects violate must not be acked as if the event had been applied."""
    async with harness.db.transaction() as session:
        await session.execute(insert(schema.effects).values(event_id="x", note="voucher V-1"))

    async def issue_voucher(
        uow: Any, event: ReceivedEvent, _payload: order_events_pb2.OrderApproved
    ) -> None:
        await uow.repos.execute(
            insert(schema.effects).values(event_id=event.id, note="voucher V-1")
        )

    harness.start(issue_voucher, max_deliver=2)
    _, data = envelope_bytes("O-8")
    await harness.publish(data, "m-1")

    await harness.settle(delivered=1)
    letters = await dead_letters(js)
    assert len(letters) == 1
    assert "gave up after 2 deliveries" in letters[0].reason
    assert "Conflict" in letters[0].reason
    assert await count_rows(harness.db, schema.inbox) == 0


async def test_two_consumers_of_one_durable_apply_each_event_once(
    harness: Harness, schema: Schema
) -> None:
    calls = Calls()
    harness.start(recording_handler(schema, calls), batch_size=4)
    harness.start(recording_handler(schema, calls), batch_size=4)
    published: Sequence[str] = []
    for n in range(20):
        event_id, data = envelope_bytes(f"O-{n}")
        published = [*published, event_id]
        # Each event twice: replicas race for the copies.
        await harness.publish(data, f"{n}-a")
        await harness.publish(data, f"{n}-b")

    await harness.settle(delivered=40, within=20)
    # On PostgreSQL two replicas may both run the handler; the loser's effects roll back.
    assert set(calls.event_ids) == set(published)
    assert await count_rows(harness.db, schema.inbox) == 20
    assert len(await harness.effects()) == 20


async def test_long_handler_keeps_its_message_in_progress_instead_of_redelivered(
    harness: Harness, schema: Schema
) -> None:
    calls = Calls()

    async def slow(_call: int) -> None:
        await asyncio.sleep(1.5)

    harness.start(recording_handler(schema, calls, slow), ack_wait_seconds=0.6)
    _, data = envelope_bytes("O-9")
    await harness.publish(data, "m-1")

    info = await harness.settle(delivered=1)
    assert info.delivered is not None
    assert info.delivered.consumer_seq == 1, "redelivered while the handler was still working"
    assert len(calls.event_ids) == 1


async def test_durable_follows_a_release_that_handles_more_event_types(
    harness: Harness, schema: Schema
) -> None:
    calls = Calls()
    harness.start(recording_handler(schema, calls))
    approved_id, approved = envelope_bytes("O-10")
    await harness.publish(approved, "m-1")
    await harness.settle(delivered=1)
    await harness.stop()

    # The next release also handles order.completed, under the same durable name.
    async def on_completed(
        uow: Any, event: ReceivedEvent, payload: order_events_pb2.OrderCompleted
    ) -> None:
        calls.event_ids.append(event.id)

    consumer = EventConsumer(
        service=CONSUMER,
        stream=ORDER,
        handlers=[
            Handler(order_events_pb2.OrderApproved, recording_handler(schema, calls)),
            Handler(order_events_pb2.OrderCompleted, on_completed),
        ],
        unit_of_work=session_units(harness.db, Outbox(CONSUMER, schema.outbox)),
        inbox=schema.inbox,
        bus=harness.bus,
    )
    stop = asyncio.Event()
    harness.consumers.append((stop, asyncio.create_task(consumer.run(stop))))
    completed_id, completed = envelope_bytes(
        "O-10",
        event_type="order.completed",
        payload=order_events_pb2.OrderCompleted(order_id="O-10"),
    )
    await harness.publish(completed, "m-2", subject="orderline.order.completed")
    await harness.settle(delivered=2)
    assert calls.event_ids == [approved_id, completed_id]


async def test_one_bad_event_in_a_fetched_batch_costs_the_others_nothing(
    harness: Harness, schema: Schema, js: JetStreamContext
) -> None:
    """Events that wait together are fetched and applied together; when one of them cannot be
    handled, the others still take effect exactly once and only the bad one is dead-lettered."""
    ids = {}
    for order_id in ("O-20", "O-21", "O-22", "O-23"):
        ids[order_id], data = envelope_bytes(order_id)
        await harness.publish(data, f"m-{order_id}")

    calls = Calls()

    async def reject_o21(call: int) -> None:
        if calls.event_ids[-1] == ids["O-21"]:
            raise PoisonMessage("O-21 names a device that does not exist")

    harness.start(recording_handler(schema, calls, reject_o21))
    await harness.settle(delivered=4)

    letters = await dead_letters(js)
    assert [letter.reason for letter in letters] == [
        "PoisonMessage: O-21 names a device that does not exist"
    ]
    assert sorted(note.split("#")[0] for note in await harness.effects()) == [
        "O-20",
        "O-22",
        "O-23",
    ]
    assert await count_rows(harness.db, schema.inbox) == 3


async def test_events_fetched_together_are_all_handled_and_acked(
    harness: Harness, schema: Schema
) -> None:
    for n in range(30):
        _, data = envelope_bytes(f"O-{100 + n}")
        await harness.publish(data, f"m-{n}")
    calls = Calls()
    harness.start(recording_handler(schema, calls))

    info = await harness.settle(delivered=30)
    assert info.num_redelivered == 0
    assert len(set(calls.event_ids)) == 30
    assert len(await harness.effects()) == 30
    assert await count_rows(harness.db, schema.inbox) == 30


async def test_the_backlog_counts_what_the_consumer_has_yet_to_settle(
    harness: Harness, schema: Schema, bus: EventBus
) -> None:
    release = asyncio.Event()

    async def wait_for_release(_call: int) -> None:
        await release.wait()

    consumer = EventConsumer(
        service=CONSUMER,
        stream=ORDER,
        handlers=[Handler(order_events_pb2.OrderApproved, recording_handler(schema, Calls()))],
        unit_of_work=session_units(harness.db, Outbox(CONSUMER, schema.outbox)),
        inbox=schema.inbox,
        bus=bus,
    )
    assert await consumer.backlog() is None  # never subscribed: nothing read
    for n in range(3):
        _, data = envelope_bytes(f"O-{n}")
        await harness.publish(data, f"m-{n}")
    harness.start(recording_handler(schema, Calls(), then=wait_for_release), batch_size=1)
    # One delivered and held by its handler, two not delivered yet.
    await wait_until(lambda: _is(consumer.backlog(), 3), within=10, what="a backlog of 3")
    release.set()
    await harness.settle(delivered=3)
    assert await consumer.backlog() == 0


async def _is(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected


async def test_a_lingering_consumer_handles_events_published_apart_in_one_transaction(
    harness: Harness, schema: Schema
) -> None:
    units: list[Any] = []  # held, so that no two units can share an id()

    async def handle(uow: Any, event: ReceivedEvent, payload: Any) -> None:
        units.append(uow)

    harness.start(handle, linger_seconds=1.0)
    await asyncio.sleep(0.5)  # the durable and its pull are in place
    for n in range(5):
        _, data = envelope_bytes(f"O-{200 + n}")
        await harness.publish(data, f"linger-{n}")
        await asyncio.sleep(0.05)  # each one alone at first: only the linger joins them

    await harness.settle(delivered=5)
    assert len(units) == 5
    assert len({id(u) for u in units}) == 1, "one unit of work (one transaction) for the five"
