"""Leases: at most one holder at a time for each slot of a piece of work (`LeaseSet`), handed
over within seconds when its holder dies.

Each lease is one entry of a NATS JetStream key-value bucket whose entries expire `ttl` after
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
import hashlib
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

import nats.errors
import nats.js.errors
from nats.js.api import StorageType
from nats.js.kv import KeyValue

from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus

log = get_logger(__name__)

_NATS_FAILURES = (TimeoutError, OSError, nats.errors.Error)


async def _open_bucket(bus: EventBus, bucket: str, ttl: float) -> KeyValue:
    js = bus.js
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):
            # Two replicas starting together: one creates, the other finds it.
            await js.create_key_value(bucket=bucket, history=1, ttl=ttl, storage=StorageType.FILE)
        return await js.key_value(bucket)


async def _bucket_ttl(kv: KeyValue, bucket: str, wanted: float) -> float:
    """The bucket's expiry is what hands a dead holder's lease over: every holder must renew and
    step down by it, whatever this process was configured with."""
    status = await kv.status()
    actual = status.ttl
    if actual and abs(actual - wanted) > 1e-3:
        log.warning("lease bucket keeps its own ttl", bucket=bucket, ttl=actual, wanted=wanted)
        return float(actual)
    return wanted


async def _changed_or_stopped(changed: asyncio.Event, stop: asyncio.Event) -> None:
    """Returns when `changed` is set (and clears it) or when stopping."""
    waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    changed.clear()


def default_holder() -> str:
    """This process among its peers: the host (the pod's name in Kubernetes) and the pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _key_token(name: str) -> str:
    """A name as one token of a key-value key (letters, digits, `-` and `_`); a name that needs
    changing gets a short hash of itself so that two names never meet."""
    token = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if token != name or not token:
        token += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return token


class LeaseSet:
    """Slots 0 … count-1 of one piece of work (say, partitions of a fleet) spread over the live
    members, each slot a lease as above: at most one holder at a time.

    Every member keeps a membership entry (`<prefix>.member.<name>`) and each slot it holds
    (`<prefix>.slot.<n>`, its name and what it advertises), all in one bucket whose entries
    expire `ttl` after their last write; each is renewed every third of the ttl, conditional on
    the revision last written. Each round a member reads every entry of the prefix and aims at
    ceil(count / live members) slots: it takes free ones (absent, deleted or expired) up to that,
    and gives back its surplus, highest first, when more members are live. Giving a slot back
    awaits `before_release` (the holder stops using it), then deletes the entry, so its next
    holder takes it on its next round; a member that dies hands its slots over when its entries
    expire. A slot not renewed for two thirds of the ttl is dropped on the holder's own clock, a
    third before anyone else may take it. A member restarted under its own name takes back the
    slots its name still holds (within its share).
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        bucket: str,
        prefix: str,
        count: int,
        holder: str,
        ttl_seconds: float,
        advertise: Callable[[], str] = str,
        before_release: Callable[[frozenset[int]], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lease needs a positive ttl")
        if count < 1:
            raise ValueError("a lease set needs at least one slot")
        self.bus = bus
        self.bucket = bucket
        self.prefix = prefix
        self.count = count
        self.holder = holder
        self.ttl = ttl_seconds
        self._advertise = advertise
        self._before_release = before_release
        self._monotonic = monotonic
        self._member_key = f"{prefix}.member.{_key_token(holder)}"
        self._member_revision = 0
        self._revisions: dict[int, int] = {}
        self._written_at: dict[int, float] = {}
        self._changed = asyncio.Event()
        # Slots this member holds.
        self.held: frozenset[int] = frozenset()
        # The other members' slots as last read: slot -> (holder, what it advertised).
        self.others: dict[int, tuple[str, str]] = {}
        # Live members as last read (this one included), and whether a round has read them.
        self.members = 0
        self.seen = False
        # Rotates where this member starts looking for free slots, so members starting
        # together do not all reach for slot 0.
        self._offset = int(hashlib.sha256(holder.encode()).hexdigest(), 16) % count

    def _slot_key(self, slot: int) -> str:
        return f"{self.prefix}.slot.{slot}"

    def _value(self) -> bytes:
        return f"{self.holder}\n{self._advertise()}".encode()

    def share(self) -> int:
        """How many slots this member aims at: ceil(count / live members)."""
        return -(-self.count // max(1, self.members))

    async def wait_changed(self, stop: asyncio.Event) -> None:
        """Returns when slots were taken or lost since the last call (or a round read the others
        for the first time), or when stopping."""
        await _changed_or_stopped(self._changed, stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Takes, renews and gives back slots until `stop`; then gives every one back."""
        kv: KeyValue | None = None
        try:
            while not stop.is_set():
                try:
                    if kv is None:
                        kv = await _open_bucket(self.bus, self.bucket, self.ttl)
                        self.ttl = await _bucket_ttl(kv, self.bucket, self.ttl)
                    await self._round(kv)
                except _NATS_FAILURES as exc:
                    log.warning(
                        "lease set: NATS did not answer", prefix=self.prefix, error=str(exc)
                    )
                late = {
                    s
                    for s in self.held
                    if self._monotonic() - self._written_at.get(s, 0.0) > self.ttl * 2 / 3
                }
                if late:
                    # Not renewed for two thirds of the ttl: another may take them a third later.
                    self._drop(late)
                    log.warning("leases lost: not renewed in time", prefix=self.prefix, slots=late)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.ttl / 3)
        finally:
            held = self.held
            if held and self._before_release is not None:
                with contextlib.suppress(Exception):
                    await self._before_release(held)
            self._drop(held)
            if kv is not None:
                with contextlib.suppress(*_NATS_FAILURES, nats.js.errors.Error):
                    for slot in sorted(held):
                        await asyncio.wait_for(
                            kv.delete(self._slot_key(slot), last=self._revisions.get(slot)), 2
                        )
                    await asyncio.wait_for(
                        kv.delete(self._member_key, last=self._member_revision), 2
                    )
                if held:
                    log.info("leases given back", prefix=self.prefix, slots=sorted(held))

    def _drop(self, slots: Iterable[int]) -> None:
        gone = self.held & frozenset(slots)
        if gone:
            self.held = self.held - gone
            for slot in gone:
                self._revisions.pop(slot, None)
                self._written_at.pop(slot, None)
            self._changed.set()

    def _add(self, slot: int, revision: int, sent: float) -> None:
        self._revisions[slot] = revision
        self._written_at[slot] = sent
        if slot not in self.held:
            self.held = self.held | {slot}
            self._changed.set()

    async def _round(self, kv: KeyValue) -> None:
        limit = self.ttl / 3
        sent = self._monotonic()
        # Membership first: it expires before this member's slots do.
        try:
            if self._member_revision:
                self._member_revision = await asyncio.wait_for(
                    kv.update(self._member_key, self._value(), last=self._member_revision), limit
                )
            else:
                self._member_revision = await asyncio.wait_for(
                    kv.put(self._member_key, self._value()), limit
                )
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            self._member_revision = await asyncio.wait_for(
                kv.put(self._member_key, self._value()), limit
            )
        lost: set[int] = set()
        for slot in sorted(self.held):
            try:
                revision = await asyncio.wait_for(
                    kv.update(self._slot_key(slot), self._value(), last=self._revisions[slot]),
                    limit,
                )
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
                lost.add(slot)
                continue
            self._revisions[slot], self._written_at[slot] = revision, sent
        if lost:
            # Expired and taken by another (cut off longer than the ttl).
            self._drop(lost)
            log.warning("leases lost: taken by another", prefix=self.prefix, slots=sorted(lost))

        members, slots = await asyncio.wait_for(self._read(kv), limit)
        members.add(self._member_key)
        self.members = len(members)
        others = {s: v for s, v in slots.items() if v[0] != self.holder}
        # Ours by name but not held here: written by this member before a restart.
        mine = {s: v[2] for s, v in slots.items() if v[0] == self.holder and s not in self.held}
        share = self.share()

        surplus = len(self.held) - share
        if surplus > 0:
            order = sorted(self.held, key=lambda s: (s - self._offset) % self.count)
            await self._release(kv, frozenset(order[-surplus:]))

        for slot in sorted(range(self.count), key=lambda s: (s - self._offset) % self.count):
            if len(self.held) >= share:
                break
            if slot in self.held or slot in others:
                continue
            sent = self._monotonic()
            try:
                if slot in mine:
                    revision = await kv.update(self._slot_key(slot), self._value(), last=mine[slot])
                else:
                    revision = await kv.create(self._slot_key(slot), self._value())
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another took it first; read next round
            self._add(slot, revision, sent)
            log.info("lease taken", key=self._slot_key(slot), holder=self.holder)
        self.others = {s: (v[0], v[1]) for s, v in others.items() if s not in self.held}
        if not self.seen:
            self.seen = True
            self._changed.set()

    async def _release(self, kv: KeyValue, slots: frozenset[int]) -> None:
        if self._before_release is not None:
            await self._before_release(slots)
        revisions = {s: self._revisions.get(s) for s in slots}
        self._drop(slots)
        for slot in sorted(slots):
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(self._slot_key(slot), last=revisions[slot])
        log.info("leases given back for another member", prefix=self.prefix, slots=sorted(slots))

    async def _read(self, kv: KeyValue) -> tuple[set[str], dict[int, tuple[str, str, int]]]:
        """Every live entry of the prefix: the member keys, and each slot's holder, what it
        advertised and its revision."""
        members: set[str] = set()
        slots: dict[int, tuple[str, str, int]] = {}
        # An ephemeral consumer per round, removed by the server a second after it stops (the
        # client's default keeps it five minutes: hundreds of them per member).
        watcher = await kv.watch(f"{self.prefix}.>", ignore_deletes=True, inactive_threshold=1.0)
        try:
            while True:
                entry = await watcher.updates(timeout=self.ttl / 3)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                if entry.operation is not None:
                    continue
                rest = entry.key[len(self.prefix) + 1 :]
                kind, _, name = rest.partition(".")
                if kind == "member":
                    members.add(entry.key)
                elif kind == "slot" and name.isdigit() and int(name) < self.count:
                    holder, _, advertised = (entry.value or b"").decode().partition("\n")
                    slots[int(name)] = (holder, advertised, entry.revision)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return members, slots
