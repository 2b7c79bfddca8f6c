"""The NATS JetStream connection: connect with retries, declare streams, publish."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.permissions import inbox_prefix
from orderline_runtime.messaging.streams import StreamSpec, all_streams

log = get_logger(__name__)


_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class EventBus:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        credentials_file: str | None = None,
        user: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.credentials_file = credentials_file
        self.user = user
        self.password = password
        self.tls = tls
        # Replies (JetStream's answers, pulled messages) arrive under the service's own inbox
        # prefix, the one its NATS user may subscribe to (messaging/permissions.py).
        self.inbox_prefix = inbox_prefix(name) if _SUBJECT_TOKEN.match(name) else "_INBOX"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.ready = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("event bus is not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("event bus is not connected")
        return self._js

    async def connect(self, streams: Iterable[StreamSpec] | None = None) -> None:
        """Connects, retrying until NATS answers (it may start after us), then declares streams.
        Later disconnects are healed by the client's own reconnect loop."""
        delay = 0.2
        while True:
            try:
                self._nc = await nats.connect(
                    servers=self.url.split(","),
                    name=self.name,
                    user_credentials=self.credentials_file,
                    user=self.user,
                    password=self.password,
                    tls=self.tls,
                    inbox_prefix=self.inbox_prefix,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                self._js = self._nc.jetstream(timeout=5)
                await self.ensure_streams(all_streams() if streams is None else streams)
                break
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                if self._nc is not None:
                    await self._close_quietly()
                log.warning("nats unavailable, retrying", url=self.url, error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.ready.set()
        log.info("nats connected", url=self.url)

    async def ensure_streams(self, streams: Iterable[StreamSpec]) -> None:
        for spec in streams:
            config = StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                discard=DiscardPolicy.OLD,
                duplicate_window=120.0,
            )
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                # Exists with another configuration: its owner brings it up to date (an older
                # or newer release of another service must not set it back, and may not: its
                # NATS user can create the stream but not update it).
                if spec.owner in ("", self.name):
                    await self.js.update_stream(config)
                else:
                    log.info("stream left to its owner", stream=spec.name, owner=spec.owner)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        await self.js.publish(subject, data, headers=headers)

    async def drain(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                await asyncio.wait_for(self._nc.drain(), timeout=5)
            except Exception as exc:  # already closing or broker gone: nothing left to save
                log.warning("nats drain incomplete", error=str(exc))
                await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            if self._nc is not None:
                await self._nc.close()
        except Exception as exc:
            log.debug("nats close failed", error=str(exc))

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")
