"""The services' NATS users and permissions (`make nats-config`) on a real nats-server started
with the generated configuration: each service's user can do what the service does (declare
the streams, publish its own events and dead letters, create, fetch from and ack its durable
consumers, read a consumed stream from the start, keep device-monitor's lease), and the server
refuses it another service's events, another's consumer and another's inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from _runtime_support import Schema, count_rows, session_units
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from sqlalchemy import Column, MetaData, String, Table

from orderline.events.v1 import order_events_pb2
from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.database import Database
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.consumer import EventConsumer, Handler
from orderline_runtime.messaging.lease import LeaseSet
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.permissions import (
    KV_BUCKETS,
    inbox_prefix,
    nats_server_config,
    service_permissions,
    write_nats_config,
)
from orderline_runtime.messaging.relay import OutboxRelay
from orderline_runtime.messaging.streams import DEADLETTER, StreamSpec

SERVICES = sorted(catalogue().services)


@pytest.fixture
def auth_dir(tmp_path: Path) -> Path:
    write_nats_config(tmp_path / "auth")
    return tmp_path / "auth"


@pytest.fixture
def secured_nats(tmp_path: Path, auth_dir: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream", config_file=auth_dir / "nats-auth.conf").start()
    yield server
    server.stop()


def password(auth_dir: Path, service: str) -> str:
    return (auth_dir / f"{service}.password").read_text().strip()


@pytest.fixture
async def buses(secured_nats: NatsServer, auth_dir: Path) -> AsyncIterator[dict[str, EventBus]]:
    """Every service's bus, connected as its own user: each declares every stream at start."""
    connected: dict[str, EventBus] = {}
    for service in SERVICES:
        bus = EventBus(
            secured_nats.url, name=service, user=service, password=password(auth_dir, service)
        )
        await asyncio.wait_for(bus.connect(), 30)
        connected[service] = bus
    yield connected
    for bus in connected.values():
        await bus.drain()


class Refusals:
    """A raw connection as one service's user, collecting the server's permission errors."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[str] = asyncio.Queue()
        self.nc: Client | None = None

    async def connect(self, url: str, user: str, pw: str) -> Refusals:
        async def on_error(exc: Exception) -> None:
            await self.errors.put(str(exc))

        self.nc = await nats.connect(
            url, user=user, password=pw, error_cb=on_error, inbox_prefix=inbox_prefix(user)
        )
        return self

    async def refused(self, operation: str, subject: str) -> str:
        """The server's answer names the operation and the subject; waits for that error
        (other errors, from earlier refusals, are passed over)."""
        while True:
            error = await asyncio.wait_for(self.errors.get(), 10)
            # nats-py lowercases the server's `-ERR 'Permissions Violation for ...'`.
            expected = f'permissions violation for {operation} to "{subject}"'.lower()
            if expected in error.lower():
                return error

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


def _inbox_table() -> Table:
    return Table("inbox", MetaData(), Column("consumer", String), Column("event_id", String))


async def _no_unit_of_work() -> Any:
    raise AssertionError("the permission test handles no event")


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_does_what_it_needs_under_its_own_user(
    service: str, buses: dict[str, EventBus]
) -> None:
    cat = catalogue()
    bus = buses[service]
    # Its own events, one per event type it produces (the relay's publish), and a dead letter.
    for event in (e for e in cat.events if e.owner == service):
        ack = await bus.js.publish(event.subject, b"{}", headers={"Nats-Msg-Id": new_id()})
        assert ack.stream == event.stream.name
    ack = await bus.js.publish(f"orderline.deadletter.{service}", b"{}")
    assert ack.stream == DEADLETTER.name
    # The other owners publish what this service consumes, so its consumers have messages.
    consumed = cat.consumed_by(service)
    for event in consumed:
        await buses[event.owner].js.publish(event.subject, b"{}")
    streams: dict[StreamSpec, list[Handler]] = {}
    for event in consumed:
        streams.setdefault(event.stream, []).append(
            Handler(event.payload_type, lambda *_: _no_unit_of_work())
        )
    for stream, handlers in streams.items():
        consumer = EventConsumer(
            service=service,
            stream=stream,
            handlers=handlers,
            unit_of_work=_no_unit_of_work,
            inbox=_inbox_table(),
            bus=bus,
        )
        sub = await consumer._subscribe()  # the durable, as the running consumer creates it
        published = sum(1 for event in consumed if event.stream == stream)
        msgs: list[Msg] = []
        while len(msgs) < published:
            got = await sub.next_batch(published, wait=5)
            assert got, f"{service} received {len(msgs)} of {published} on {stream.name}"
            msgs += got
        for msg in msgs:
            await msg.ack_sync()  # answered by the server: the ack was allowed
        await sub.close()
        info = await bus.js.consumer_info(stream.name, service)
        assert info.num_ack_pending == 0
        # An ordered reader from the start (reporting's rebuild reads its streams so).
        reader = await bus.js.subscribe(
            stream.subjects[0],
            stream=stream.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        first = await reader.next_msg(timeout=5)
        assert first.metadata.sequence.stream == 1
        await reader.unsubscribe()
        assert (await bus.js.stream_info(stream.name)).state.messages > 0
    # Declared again (a restart): creating the streams that exist changes nothing.
    await bus.ensure_streams([*cat.streams, DEADLETTER])


async def test_device_monitor_keeps_its_partition_leases(
    secured_nats: NatsServer, auth_dir: Path
) -> None:
    """Under its own user's permissions, device-monitor's replicas take, renew and read the
    partition leases (the bucket's entries, read through a watch each round) and split the
    partitions between them."""
    from orderline_device_monitor.app.ownership import BUCKET

    assert KV_BUCKETS["device-monitor"] == (BUCKET,)
    stop = asyncio.Event()
    replicas = []
    for holder in ("replica-a", "replica-b"):
        bus = EventBus(
            secured_nats.url,
            name="device-monitor",
            user="device-monitor",
            password=password(auth_dir, "device-monitor"),
        )
        await bus.connect(streams=[])
        leases = LeaseSet(bus, bucket=BUCKET, prefix="fleet", count=4, holder=holder, ttl_seconds=3)
        replicas.append((bus, leases, asyncio.create_task(leases.run(stop))))
    sets = [leases for _, leases, _ in replicas]
    held = await eventually(
        lambda: _async([leases.held for leases in sets]),
        lambda h: all(len(s) == 2 for s in h),
        what="the two replicas hold two partitions each",
    )
    assert held[0] | held[1] == {0, 1, 2, 3}
    stop.set()
    for bus, _, task in replicas:
        await task
        await bus.drain()


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize("service", SERVICES)
async def test_the_server_refuses_a_service_anothers_subjects(
    service: str, secured_nats: NatsServer, auth_dir: Path
) -> None:
    cat = catalogue()
    me = await Refusals().connect(secured_nats.url, service, password(auth_dir, service))
    assert me.nc is not None
    try:
        others = [e for e in cat.events if e.owner != service]
        assert others
        for event in others:
            await me.nc.publish(event.subject, b"forged")
            await me.refused("Publish", event.subject)
        # Another's dead letters, another's durable consumer, another's inbox.
        other = next(s for s in SERVICES if s != service)
        not_mine = next(s.name for s in cat.streams if s.owner != service)
        for subject in (
            f"$JS.API.STREAM.UPDATE.{not_mine}",
            f"orderline.deadletter.{other}",
            f"$JS.API.CONSUMER.DURABLE.CREATE.ORDER.{other}",
            f"$JS.API.CONSUMER.MSG.NEXT.ORDER.{other}",
            "$JS.API.STREAM.DELETE.ORDER",
            "$JS.API.STREAM.PURGE.ORDER",
        ):
            await me.nc.publish(subject, b"{}")
            await me.refused("Publish", subject)
        await me.nc.subscribe(f"{inbox_prefix(other)}.>")
        await me.refused("Subscription", f"{inbox_prefix(other)}.>")
    finally:
        await me.close()


async def test_a_forged_event_never_reaches_the_stream(
    secured_nats: NatsServer, auth_dir: Path
) -> None:
    intake = EventBus(
        secured_nats.url, name="intake", user="intake", password=password(auth_dir, "intake")
    )
    await intake.connect()
    forger = await Refusals().connect(
        secured_nats.url, "reporting", password(auth_dir, "reporting")
    )
    assert forger.nc is not None
    try:
        subject = next(e.subject for e in catalogue().events if e.owner == "intake")
        await forger.nc.publish(subject, b"forged")
        await forger.refused("Publish", subject)
        assert (await intake.js.stream_info("ORDER")).state.messages == 0
    finally:
        await forger.close()
        await intake.drain()


@pytest.mark.parametrize(("user", "pw"), [("intake", "wrong"), ("nobody", "nothing"), (None, None)])
async def test_a_client_without_a_services_password_cannot_connect(
    secured_nats: NatsServer, user: str | None, pw: str | None
) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(
            secured_nats.url, user=user, password=pw, allow_reconnect=False, connect_timeout=2
        )


def test_each_service_publishes_only_its_own_streams_subjects() -> None:
    cat = catalogue()
    for service in SERVICES:
        events = [
            p
            for p in service_permissions(service, cat).publish
            if p.startswith("orderline.") and not p.startswith("orderline.deadletter.")
        ]
        owned = [s for s in cat.streams if s.owner == service]
        assert events == [subject for s in owned for subject in s.subjects]


def test_the_configuration_needs_every_services_password() -> None:
    with pytest.raises(ValueError, match="no password for"):
        nats_server_config({"intake": "x"})


def test_passwords_are_kept_when_the_configuration_is_written_again(tmp_path: Path) -> None:
    write_nats_config(tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.glob("*.password")}
    written = write_nats_config(tmp_path)
    assert written == [tmp_path / "nats-auth.conf"]
    assert {p.name: p.read_text() for p in tmp_path.glob("*.password")} == before
    assert (tmp_path / "intake.password").stat().st_mode & 0o077 == 0


async def test_a_relay_refused_its_subject_keeps_the_event_for_later(
    secured_nats: NatsServer, auth_dir: Path, db: Database, schema: Schema
) -> None:
    """A service set up with another's NATS user (or publishing another's events): the
    server refuses the publish, nothing reaches the stream, and the outbox row stays unsent
    (the relay retries it), never marked sent or lost."""
    wrong = EventBus(
        secured_nats.url,
        name="reporting",
        user="reporting",
        password=password(auth_dir, "reporting"),
    )
    await wrong.connect(streams=[])
    intake = EventBus(
        secured_nats.url, name="intake", user="intake", password=password(auth_dir, "intake")
    )
    await intake.connect()
    try:
        outbox = Outbox("intake", schema.outbox)
        async with session_units(db, outbox)() as uow:
            uow.emit(order_events_pb2.OrderApproved(order_id="O-1"))
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await OutboxRelay(db, outbox, wrong).relay_once()
        assert await count_rows(db, schema.outbox, schema.outbox.c.sent_at.is_(None)) == 1
        assert (await intake.js.stream_info("ORDER")).state.messages == 0
        # Under its own user the same row leaves.
        assert await OutboxRelay(db, outbox, intake).relay_once() == 1
        assert (await intake.js.stream_info("ORDER")).state.messages == 1
    finally:
        await wrong.drain()
        await intake.drain()
