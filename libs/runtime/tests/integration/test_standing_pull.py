"""The standing pull against a real JetStream: messages arrive as they are published with one
request per half window (not two per fetch), expired and lost requests are renewed, and what
arrived but was not taken goes back at once when the pull closes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import pytest
from _runtime_support import wait_until
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from orderline_devtools.local import NatsServer
from orderline_runtime.messaging.pull import ConsumerGone, StandingPull


@pytest.fixture
async def stream(js: JetStreamContext) -> AsyncIterator[str]:
    name = f"PULL_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    yield name
    await js.delete_stream(name)


async def durable(js: JetStreamContext, stream: str, ack_wait: float = 30.0) -> str:
    config = ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait)
    await js.add_consumer(stream, config)
    return "reader"


async def take(pull: StandingPull, count: int, within: float = 10.0) -> list[Msg]:
    got: list[Msg] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got += await pull.next_batch(count - len(got), wait=within)
    return got


async def test_messages_arrive_as_published_with_one_request_per_half_window(
    nc: Client, js: JetStreamContext, stream: str
) -> None:
    requests: list[bytes] = []

    async def count(msg: Msg) -> None:
        requests.append(msg.data)

    await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>", cb=count)
    pull = StandingPull(nc, stream=stream, durable=await durable(js, stream), window=8, expires=30)
    await pull.start()
    seen: list[bytes] = []
    for i in range(40):
        await js.publish(f"{stream.lower()}.x", str(i).encode())
        for msg in await take(pull, 1):
            seen.append(msg.data)
            await msg.ack()
    await pull.close()
    assert seen == [str(i).encode() for i in range(40)]
    # One request at the start, then one each time half the window (4) was delivered: a
    # fetch per message would have asked at least twice per message.
    assert len(requests) <= 1 + 40 // 4 + 1, requests


async def test_a_batch_is_what_has_arrived_up_to_the_most_asked(
    nc: Client, js: JetStreamContext, stream: str
) -> None:
    for i in range(10):
        await js.publish(f"{stream.lower()}.x", str(i).encode())
    pull = StandingPull(nc, stream=stream, durable=await durable(js, stream), window=16)
    await pull.start()
    await wait_until(
        lambda: _ack_pending(js, stream, 10), within=10, what="all ten delivered to the pull"
    )
    first = await pull.next_batch(4, wait=1)
    rest = await pull.next_batch(100, wait=1)
    assert [m.data for m in first + rest] == [str(i).encode() for i in range(10)]
    assert (len(first), len(rest)) == (4, 6)
    assert await pull.next_batch(100, wait=0.2) == []
    await pull.close()


async def test_an_expired_request_is_renewed(nc: Client, js: JetStreamContext, stream: str) -> None:
    pull = StandingPull(nc, stream=stream, durable=await durable(js, stream), expires=0.5)
    await pull.start()
    assert await pull.next_batch(1, wait=1.5) == []  # the first request expired meanwhile
    await js.publish(f"{stream.lower()}.x", b"late")
    [msg] = await take(pull, 1)
    assert msg.data == b"late"
    await pull.close()


async def test_a_restarted_server_is_asked_again(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        client = await nats.connect(server.url, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
        js = client.jetstream(timeout=5)
        await js.add_stream(StreamConfig(name="RESTART", subjects=["restart.>"]))
        pull = StandingPull(client, stream="RESTART", durable=await durable(js, "RESTART"))
        pull.expires = 1.0
        await pull.start()
        server.stop()
        server.start()  # same port and store: the client reconnects, its requests are gone
        await wait_until(lambda: _connected(client), within=10, what="the client to reconnect")
        # JetStream answers a little after the port: publish until it does.
        await wait_until(
            lambda: _publish(js, "restart.x", b"after"), within=15, what="a publish to succeed"
        )
        [msg] = await take(pull, 1)
        assert msg.data == b"after"
        await pull.close()
        await client.close()
    finally:
        server.stop()


async def test_what_arrived_and_was_not_taken_goes_back_at_once_on_close(
    nc: Client, js: JetStreamContext, stream: str
) -> None:
    name = await durable(js, stream, ack_wait=60)  # redelivery by timeout would take a minute
    for i in range(5):
        await js.publish(f"{stream.lower()}.x", str(i).encode())
    first = StandingPull(nc, stream=stream, durable=name)
    await first.start()
    await wait_until(
        lambda: _ack_pending(js, stream, 5), within=10, what="all five delivered to the pull"
    )
    [taken] = await first.next_batch(1, wait=1)
    await taken.ack_sync()
    await first.close()
    second = StandingPull(nc, stream=stream, durable=name)
    await second.start()
    rest = await take(second, 4, within=10)
    assert sorted(m.data for m in rest) == [b"1", b"2", b"3", b"4"]  # naks: any order
    assert {m.metadata.num_delivered for m in rest} == {2}
    await second.close()


async def test_a_deleted_consumer_is_reported(
    nc: Client, js: JetStreamContext, stream: str
) -> None:
    pull = StandingPull(nc, stream=stream, durable=await durable(js, stream))
    await pull.start()
    await js.delete_consumer(stream, "reader")
    with pytest.raises(ConsumerGone):
        async with asyncio.timeout(10):
            while True:
                await pull.next_batch(1, wait=0.5)
    await pull.close()


async def _ack_pending(js: JetStreamContext, stream: str, count: int) -> bool:
    info = await js.consumer_info(stream, "reader")
    return info.num_ack_pending == count


async def _connected(client: Client) -> bool:
    return bool(client.is_connected)


async def _publish(js: JetStreamContext, subject: str, data: bytes) -> bool:
    try:
        await js.publish(subject, data, timeout=1)
    except nats.errors.Error:
        return False
    return True
