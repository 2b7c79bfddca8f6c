"""A standing pull on one durable JetStream consumer: messages as they are published, in batches
of whatever has arrived.

nats-py's `PullSubscription.fetch` asks the server twice per call (a no-wait probe, then a
lingering request), parses a status reply when the probe finds nothing, and waits for each
message through `asyncio.wait_for` (a task per message). In an order pipeline a fetch mostly
finds one or two messages, so that was paid per delivery, by the service and by the server
alike. Here, as nats.go's `Consume` does, pull requests for up to `window` messages stay open
at the server and are topped up once half of them are delivered: a delivery costs the message
alone. Requests expire after `expires` seconds and are renewed then, so one lost with a
connection (the server forgets a client's requests when it goes) is replaced within that time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header

from orderline_runtime.messaging.permissions import JS_API

# 408: a request expired with messages still owed (how many in Nats-Pending-Messages);
# 409: the server ended it (max waiting exceeded, leadership change, server shutdown...).
_EXPIRED, _ENDED = "408", "409"
# A 409 that no new request can cure: the durable itself is gone or changed; re-create it.
_CONSUMER_GONE = ("consumer deleted", "consumer is push based")
# 503, no responders: a request to a durable that does not exist (deleted while we asked).
_NO_RESPONDERS = "503"


class ConsumerGone(Exception):
    """The server says the durable consumer no longer exists as a pull consumer."""


class StandingPull:
    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        durable: str,
        window: int = 64,
        expires: float = 2.0,
    ) -> None:
        self._nc = nc
        self._next_subject = f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.window = window
        self.expires = expires
        self._inbox = ""
        self._sub: Subscription | None = None
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        # Messages asked for and neither delivered nor given up by the server yet (an
        # estimate: a status may be lost with a connection; the renewal below covers that).
        self._owed = 0
        self._renew_at = 0.0
        self._gone: str | None = None

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        await self._top_up()

    async def next_batch(self, most: int, wait: float) -> list[Msg]:
        """Up to `most` messages: those already here at once, else the first to arrive within
        `wait` seconds together with any that came with it. [] when none came."""
        await self._top_up()
        if not self._buffer:
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
            except TimeoutError:
                await self._top_up()
                return []
            await self._top_up()
        batch = self.take_ready(most)
        await self._top_up()
        return batch

    def take_ready(self, most: int) -> list[Msg]:
        """Up to `most` of the messages already here, without waiting."""
        return [self._buffer.popleft() for _ in range(min(most, len(self._buffer)))]

    async def close(self) -> None:
        """Stops asking and hands back what arrived but was not taken (nak: redelivered at
        once, to this or another replica)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            finally:
                while self._buffer:
                    await self._buffer.popleft().nak()

    async def _receive(self, msg: Msg) -> None:
        headers = msg.headers
        # A status from the server comes as headers alone ("NATS/1.0 408 Request Timeout").
        status = headers.get("Status") if headers and not msg.data else None
        if status is None:
            self._owed = max(0, self._owed - 1)
            self._buffer.append(msg)
        elif status == _NO_RESPONDERS:
            self._gone = "no consumer answers"
        elif status in (_EXPIRED, _ENDED):
            assert headers is not None
            # nats-py keys the description by its Header enum, whose hash is not the text's.
            description = str(headers.get(Header.DESCRIPTION, "")).lower()
            if status == _ENDED and description.startswith(_CONSUMER_GONE):
                self._gone = description
            pending = headers.get("Nats-Pending-Messages")
            self._owed = max(0, self._owed - int(pending)) if pending else 0
        # Anything else (an idle heartbeat, 404 for a no-wait request) needs nothing from us.
        self._arrived.set()

    async def _top_up(self) -> None:
        if self._gone is not None:
            raise ConsumerGone(self._gone)
        if self._sub is None:
            return
        now = time.monotonic()
        if now >= self._renew_at:
            # The newest request has expired at the server by now (same clock span): whatever
            # was owed by it is owed no more.
            self._owed = 0
        # What is owed and what waits here unread together stay within the window: a slow
        # reader is not sent more than it holds (delivered messages' ack clocks are running).
        held = self._owed + len(self._buffer)
        if held > self.window // 2:
            return
        ask = self.window - held
        request = {"batch": ask, "expires": int(self.expires * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), self._inbox)
        self._owed += ask
        self._renew_at = now + self.expires
