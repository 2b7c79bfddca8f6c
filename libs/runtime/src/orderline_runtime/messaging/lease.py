"""A lease: at most one holder at a time for a named piece of work, handed over within seconds
when its holder dies.

The lease is one entry of a NATS JetStream key-value bucket whose entries expire `ttl` after
their last write (the bucket's max age). Taking it is a create that succeeds only when the key
is absent (or deleted, or expired); holding it is an update conditional on the revision this
holder last wrote, every third of the ttl. A holder that cannot renew steps down on its own
clock after two thirds of the ttl, a third before the server lets anyone else take the key, so
two holders never overlap while clocks run at the same rate. A holder that stops cleanly
deletes the key (conditionally), so its successor takes over at once; one killed hands over
when the entry expires.

A holder that comes back under the same name (a container restarted in the same pod: same
host name and process id) takes its own entry back at once: the process that wrote it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js.api import StorageType
from nats.js.kv import KeyValue

from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus

log = get_logger(__name__)

_NATS_FAILURES = (TimeoutError, OSError, nats.errors.Error)


def default_holder() -> str:
    """This process among its peers: the host (the pod's name in Kubernetes) and the pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Lease:
    def __init__(
        self,
        bus: EventBus,
        *,
        bucket: str,
        key: str,
        holder: str,
        ttl_seconds: float,
        advertise: Callable[[], str] = str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lease needs a positive ttl")
        self.bus = bus
        self.bucket = bucket
        self.key = key
        self.holder = holder
        self.ttl = ttl_seconds
        # Written beside the holder's name for the others to read (say, where to reach it).
        self._advertise = advertise
        self._monotonic = monotonic
        self._revision = 0
        # When the last successful write was sent (not answered): the server's expiry runs
        # from a moment after it.
        self._written_at = 0.0
        self._changed = asyncio.Event()
        self.held = False
        # Who holds it, as last seen (this holder when held; "" when nobody or not known), and
        # what that holder advertised.
        self.holder_seen = ""
        self.advertised_seen = ""

    def _value(self) -> bytes:
        return f"{self.holder}\n{self._advertise()}".encode()

    async def wait_changed(self, stop: asyncio.Event) -> None:
        """Returns when the lease was taken or lost since the last call, or when stopping."""
        waiters = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._changed.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Takes the lease when it is free, renews it while held, until `stop`; then gives it
        back."""
        kv: KeyValue | None = None
        try:
            while not stop.is_set():
                try:
                    if kv is None:
                        kv = await self._open_bucket()
                    if self.held:
                        await self._renew(kv)
                    else:
                        await self._try_take(kv)
                except _NATS_FAILURES as exc:
                    log.warning("lease: NATS did not answer", key=self.key, error=str(exc))
                if self.held and self._monotonic() - self._written_at > self.ttl * 2 / 3:
                    # Not renewed for two thirds of the ttl: another may take it a third later.
                    self._set(False, "")
                    log.warning("lease lost: not renewed in time", key=self.key)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.ttl / 3)
        finally:
            if self.held:
                self._set(False, "")
                if kv is not None:
                    with contextlib.suppress(*_NATS_FAILURES, nats.js.errors.Error):
                        await asyncio.wait_for(kv.delete(self.key, last=self._revision), 2)
                    log.info("lease given back", key=self.key, holder=self.holder)

    async def _open_bucket(self) -> KeyValue:
        js = self.bus.js
        try:
            kv = await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                # Two replicas starting together: one creates, the other finds it.
                await js.create_key_value(
                    bucket=self.bucket, history=1, ttl=self.ttl, storage=StorageType.FILE
                )
            kv = await js.key_value(self.bucket)
        status = await kv.status()
        actual = status.ttl
        if actual and abs(actual - self.ttl) > 1e-3:
            # The bucket's expiry is what hands a dead holder's lease over: every holder must
            # renew and step down by it, whatever this process was configured with.
            log.warning(
                "lease bucket keeps its own ttl", bucket=self.bucket, ttl=actual, wanted=self.ttl
            )
            self.ttl = actual
        return kv

    async def _try_take(self, kv: KeyValue) -> None:
        sent = self._monotonic()
        try:
            revision = await kv.create(self.key, self._value())
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(self.key)
            holder, _, advertised = (entry.value or b"").decode().partition("\n")
            if holder != self.holder:
                if holder != self.holder_seen:
                    log.info("lease held by another", key=self.key, holder=holder)
                self.holder_seen, self.advertised_seen = holder, advertised
                return
            # Our own name from before a restart: that process is gone, take it back.
            revision = await kv.update(self.key, self._value(), last=entry.revision)
        self._revision, self._written_at = revision, sent
        self._set(True, self.holder)
        self.advertised_seen = self._advertise()
        log.info("lease taken", key=self.key, holder=self.holder)

    async def _renew(self, kv: KeyValue) -> None:
        sent = self._monotonic()
        try:
            revision = await asyncio.wait_for(
                kv.update(self.key, self._value(), last=self._revision), self.ttl / 3
            )
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            # Expired and taken by another (we were cut off longer than the ttl).
            self._set(False, "")
            log.warning("lease lost: taken by another", key=self.key)
            return
        self._revision, self._written_at = revision, sent

    def _set(self, held: bool, holder: str) -> None:
        if held != self.held:
            self.held = held
            self._changed.set()
        self.holder_seen = holder
        self.advertised_seen = ""
