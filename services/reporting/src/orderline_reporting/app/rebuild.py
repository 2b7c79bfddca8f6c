"""A rebuild: the projection built afresh from every stream, from the start, and checked
against the live one's digest at every position both reached (docs/reporting.md).

The replay builds into a scratch SQLite database (migrated like the live one, in a temporary
directory, dropped afterwards) with the same projector code, so the live service keeps serving
and consuming meanwhile: a reader sees the live projection throughout. Each stream is read in
order by an ephemeral ordered consumer up to its last sequence at the start of the rebuild.
The replay walks the live checkpoints in order (their positions only grow in each stream):
it applies every stream up to the checkpoint's sequence, and when its own position is the
checkpoint's (same highest sequence and same number of events applied in every stream) the
two digests must be equal. A checkpoint whose position the replay reaches with more events
applied was recorded while the live run had a gap (an event waiting for a retry) and is not
comparable; it is counted, never a failure.

With `replace`, the rebuilt projection then takes the live one's place (docs/reporting.md,
"Replacing the live projection"): the scratch catches up with the streams, then, in one
transaction of the live database that first holds back every consumer transaction of
reporting, catches up with the streams' last sequences once more and copies its tables, digest
head, checkpoints and inbox rows over the live ones. The durable consumers are left as they
are: every event they still deliver is either in the copied inbox (at or below the position
copied: a no-op) or above it (applied once, as usual).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from orderline_reporting.adapters.repository import Checkpoint, Head, ProjectionRepository
from orderline_reporting.adapters.tables import metadata
from orderline_reporting.app.projector import Projector
from orderline_reporting.domain.digest import Position
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.database import Database
from orderline_runtime.errors import FailedPrecondition, PoisonMessage
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent, parse_envelope
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.messaging.streams import StreamSpec
from orderline_runtime.unit_of_work import SqlUnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)

_CHUNK = 256  # events per scratch transaction
_IDLE_SECONDS = 10.0  # an ordered consumer that delivers nothing this long has stalled


@dataclass
class Mismatch:
    checkpoint: int
    position: Position
    live_digest: str
    rebuilt_digest: str


@dataclass
class RebuildResult:
    position: Position = field(default_factory=dict)
    digest: str = ""
    events_replayed: int = 0
    events_skipped: int = 0  # duplicates of an event id, poison (dead-lettered when live)
    checkpoints_compared: int = 0
    checkpoints_matched: int = 0
    checkpoints_not_comparable: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    live: Head | None = None
    replaced: bool = False

    @property
    def consistent(self) -> bool:
        return not self.mismatches


class _StreamReader:
    """One stream in order, up to `last` (its last sequence when the rebuild began)."""

    def __init__(self, bus: EventBus, stream: StreamSpec, last: int) -> None:
        self.bus = bus
        self.stream = stream
        self.last = last
        self.done = last == 0
        self.taken = 0  # the last sequence taken
        self._sub: Any = None
        self._held: Msg | None = None

    def extend(self, last: int) -> None:
        """The stream's last sequence now (a catch-up before a replacement): read on to it."""
        if last > self.last:
            self.last = last
            self.done = self.taken >= last

    async def take_until(self, sequence: int) -> list[Msg]:
        """The messages up to `sequence` (inclusive) not taken yet."""
        taken: list[Msg] = []
        while not self.done:
            msg = self._held or await self._next()
            self._held = None
            seq = msg.metadata.sequence.stream
            if seq > sequence:
                self._held = msg
                break
            taken.append(msg)
            self.taken = seq
            if seq >= self.last:
                self.done = True
        return taken

    async def _next(self) -> Msg:
        if self._sub is None:
            self._sub = await self.bus.js.subscribe(
                self.stream.subjects[0],
                stream=self.stream.name,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
        msg: Msg = await self._sub.next_msg(timeout=_IDLE_SECONDS)
        return msg

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


class Rebuilder:
    def __init__(
        self,
        bus: EventBus,
        live: UnitOfWorkFactory[ProjectionRepository],
        migrations: Path,
        handlers: Callable[[], Sequence[Handler]] | None = None,
        *,
        consumer: str = "reporting",
        clock: Clock = system_clock,
        before_swap: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.live = live
        self.migrations = migrations
        self.handlers = handlers or (lambda: Projector().handlers())
        # The live consumers' name in the inbox (their durable's: the service's name).
        self.consumer = consumer
        self.clock = clock
        # Called between the catch-up and the swap of a replacement: tests publish events
        # there, so that the swap finds events the live run applied and the rebuild has not.
        self.before_swap = before_swap
        self._running = asyncio.Lock()

    async def rebuild(self, *, replace: bool = False) -> RebuildResult:
        if self._running.locked():
            raise FailedPrecondition(
                "a rebuild is already running", reason="REBUILD_RUNNING", violations=[]
            )
        async with self._running:
            await self.bus.ready.wait()
            async with self.live(read_only=True) as uow:
                live_head = await uow.repos.head()
                checkpoints = await uow.repos.checkpoints()
            handlers = {h.event_type: h for h in self.handlers()}
            streams = sorted({h.spec.stream for h in handlers.values()}, key=lambda s: s.name)
            readers: dict[str, _StreamReader] = {}
            for stream in streams:
                info = await self.bus.js.stream_info(stream.name)
                if info.state.messages and info.state.first_seq > 1:
                    raise FailedPrecondition(
                        f"stream {stream.name} starts at sequence {info.state.first_seq}: "
                        "its first events are gone, so it cannot be replayed from the start",
                        reason="STREAM_TRUNCATED",
                        violations=[],
                    )
                readers[stream.name] = _StreamReader(self.bus, stream, info.state.last_seq)
            with tempfile.TemporaryDirectory(prefix="orderline-rebuild-") as scratch_dir:
                url = f"sqlite+aiosqlite:///{Path(scratch_dir) / 'rebuild.db'}"
                # Imported here: Alembic and SQLAlchemy's asyncio layer cost a serving pod
                # about 15 MiB it never needs unless someone asks for a rebuild.
                from orderline_runtime.migrations import upgrade_to_head

                await upgrade_to_head(self.migrations, url)
                db = Database(url)
                try:
                    replay = _Replay(db, handlers, readers, self.consumer, self.clock)
                    result = await replay.run(checkpoints)
                    if replace:
                        await self._replace(replay, streams)
                finally:
                    await db.dispose()
                    for reader in readers.values():
                        await reader.close()
            result.live = live_head
            return result

    async def _last_sequences(self, streams: Sequence[StreamSpec]) -> dict[str, int]:
        return {s.name: (await self.bus.js.stream_info(s.name)).state.last_seq for s in streams}

    async def _replace(self, replay: _Replay, streams: Sequence[StreamSpec]) -> None:
        """The live projection replaced by the replay's, caught up with every stream.

        Exactly once: the swap's transaction first holds back every consumer transaction of
        reporting (on PostgreSQL an exclusive lock on the inbox, which each of them reads
        first; on SQLite the database's one write lock), so the set of events the live run
        has applied stops changing; each of them was published before the streams' last
        sequences are read under that hold, so the replay, caught up to those, has applied
        each of them too. The inbox copied is the replay's: an event the durable consumers
        deliver later is a duplicate when at or below the copied position, new above it."""
        # Most of what was published meanwhile, before anything is held back.
        await replay.catch_up(await self._last_sequences(streams))
        if self.before_swap is not None:
            await self.before_swap()
        async with self.live() as uow:
            await uow.repos.hold_consumers()
            await replay.catch_up(await self._last_sequences(streams))
            head = await replay.head()
            async with replay.db.reading() as scratch:
                copied = await uow.repos.replace_with(scratch, self.consumer)
        result = replay.result
        result.position, result.digest, result.replaced = head.position, head.digest, True
        log.warning(
            "live projection replaced by a rebuild",
            digest=head.digest,
            events_applied=head.events_applied,
            rows=copied,
        )


class _Replay:
    def __init__(
        self,
        db: Database,
        handlers: dict[str, Handler],
        readers: dict[str, _StreamReader],
        consumer: str,
        clock: Clock,
    ) -> None:
        outbox = Outbox("reporting", metadata.tables["outbox"], system_clock)
        self.db = db
        self.consumer = consumer
        self.clock = clock
        self.outbox = outbox
        self.handlers = handlers
        self.readers = readers
        self.seen: set[str] = set()
        self.result = RebuildResult()

    async def run(self, checkpoints: Sequence[Checkpoint]) -> RebuildResult:
        result = self.result
        for checkpoint in checkpoints:
            if any(
                p.sequence > self.readers[s].last if s in self.readers else True
                for s, p in checkpoint.position.items()
            ):
                break  # recorded after the rebuild began: beyond what it replays
            for name, reader in self.readers.items():
                target = checkpoint.position.get(name)
                await self._apply(name, await reader.take_until(target.sequence if target else 0))
            head = await self.head()
            result.checkpoints_compared += 1
            if head.position != checkpoint.position:
                result.checkpoints_not_comparable += 1
            elif head.digest == checkpoint.digest:
                result.checkpoints_matched += 1
            else:
                result.mismatches.append(
                    Mismatch(checkpoint.number, checkpoint.position, checkpoint.digest, head.digest)
                )
        for name, reader in self.readers.items():
            await self._apply(name, await reader.take_until(reader.last))
        head = await self.head()
        result.position, result.digest = head.position, head.digest
        return result

    async def catch_up(self, last: Mapping[str, int]) -> None:
        """Every stream applied on, up to its sequence in `last`."""
        for name, reader in self.readers.items():
            reader.extend(last.get(name, 0))
            await self._apply(name, await reader.take_until(reader.last))

    def uow(self) -> SqlUnitOfWork[ProjectionRepository]:
        return SqlUnitOfWork(self.db, self.outbox, ProjectionRepository, producer="reporting")

    async def head(self) -> Head:
        async with self.uow() as uow:
            return await uow.repos.head()

    async def _apply(self, stream: str, msgs: Sequence[Msg]) -> None:
        inbox = metadata.tables["inbox"]
        for start in range(0, len(msgs), _CHUNK):
            async with self.uow() as uow:
                # The inbox rows the live consumers would have written: a replacement copies
                # them, so that the durables' later deliveries of these events are no-ops.
                handled: list[dict[str, Any]] = []
                for msg in msgs[start : start + _CHUNK]:
                    if not await self._apply_one(uow, stream, msg, handled):
                        self.result.events_skipped += 1
                if handled:
                    await uow.session.execute(inbox.insert(), handled)

    async def _apply_one(
        self, uow: Any, stream: str, msg: Msg, handled: list[dict[str, Any]]
    ) -> bool:
        """As the live consumer would: a duplicate event id, an event reporting does not
        handle and a poison message change nothing (the handlers check before writing)."""
        try:
            event: ReceivedEvent = parse_envelope(
                msg.data, msg.subject, msg.metadata.sequence.stream
            )
        except PoisonMessage:
            return False
        handler = self.handlers.get(event.event_type)
        if handler is None or event.id in self.seen:
            return False
        try:
            payload = event.payload(handler.payload_type)
            if getattr(payload, "order_id", event.order_id) != event.order_id:
                return False  # the live consumer dead-letters it
            await handler.fn(uow, event, payload)
        except PoisonMessage:
            return False
        self.seen.add(event.id)
        handled.append(
            {
                "consumer": self.consumer,
                "event_id": event.id,
                "event_type": event.event_type,
                "processed_at": self.clock(),
            }
        )
        self.result.events_replayed += 1
        return True
