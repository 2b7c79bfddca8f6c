"""The unit of work: one transaction, the service's repositories, and the events it emits.

Use cases and event handlers receive a unit of work, never a database session:

    async with self.uow() as uow:
        order = await uow.repos.get(order_id)
        ...
        uow.emit(order_events_pb2.OrderApproved(order_id=order.id, ...))
        uow.on_commit(worker.notify)

Leaving the block commits the state change together with the emitted events (the transactional
outbox); an exception rolls both back. The event type, subject and stream of a payload come from
the event catalogue, and a service may emit only the events it owns. A unique-key clash becomes
`Conflict`, so callers need not know SQLAlchemy. `on_commit` callbacks run after the commit and
never after a rollback.

`SqlUnitOfWork` is the real one; `orderline_devtools.fakes` has an in-memory one for use-case
tests without I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, Self, TypeGuard, TypeVar, runtime_checkable

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError

from orderline_runtime.database import Database, SqlConnection
from orderline_runtime.errors import Conflict
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.catalogue import EventSpec, catalogue
from orderline_runtime.telemetry import inject_current

log = get_logger(__name__)

R = TypeVar("R", covariant=True)


@dataclass(frozen=True)
class PendingEvent:
    """An event emitted in a unit of work, written to the outbox when it commits."""

    event_id: str
    spec: EventSpec
    payload: Message
    order_id: str
    device_id: str
    # W3C context of the span that emitted it: the relay publishes under it, so consumers
    # continue the same trace.
    trace_headers: dict[str, str]


@runtime_checkable
class BufferedWrites(Protocol):
    """Repositories that gather some writes in memory (a count bumped by every event of a
    batch, say) write them here, inside the transaction, just before it commits."""

    async def flush(self) -> None: ...


def _buffers_writes(repositories: object) -> TypeGuard[BufferedWrites]:
    # isinstance against a runtime-checkable Protocol walks its members on every call (7-11 µs,
    # once per transaction); the answer for a repositories class does not change.
    kind = type(repositories)
    known = _BUFFERING.get(kind)
    if known is None:
        known = _BUFFERING[kind] = isinstance(repositories, BufferedWrites)
    return known


_BUFFERING: dict[type, bool] = {}


class UnitOfWork(ABC, Generic[R]):
    """What a use case or handler sees; subclasses open and close the transaction."""

    def __init__(self, producer: str, *, read_only: bool = False) -> None:
        self.producer = producer
        self.read_only = read_only
        self.events: list[PendingEvent] = []
        self._on_commit: list[Callable[[], None]] = []
        self._repos: R | None = None

    @property
    def repos(self) -> R:
        if self._repos is None:
            raise RuntimeError("repositories are only available inside `async with uow:`")
        return self._repos

    def emit(self, payload: Message, *, order_id: str = "", device_id: str = "") -> str:
        """Adds the event to this transaction; returns its id. The envelope's order and device
        default to the payload's own `order_id` and `device_id` fields."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot emit events")
        spec = catalogue().for_payload(type(payload))
        if spec.owner != self.producer:
            raise ValueError(
                f"{self.producer} may not emit {spec.event_type}: {spec.owner} owns it "
                "(protos/orderline/events/v1)"
            )
        event = PendingEvent(
            event_id=new_id(),
            spec=spec,
            payload=payload,
            order_id=order_id or _field(payload, "order_id"),
            device_id=device_id or _field(payload, "device_id"),
            trace_headers=inject_current(),
        )
        self.events.append(event)
        return event.event_id

    def on_commit(self, fn: Callable[[], None]) -> None:
        self._on_commit.append(fn)

    @abstractmethod
    async def __aenter__(self) -> Self: ...

    @abstractmethod
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def _committed(self) -> None:
        for fn in self._on_commit:
            try:
                fn()
            except Exception:
                # The transaction stands; a failing hook must not make the caller retry it.
                log.exception("on_commit callback failed")

    def _reset(self) -> None:
        self.events = []
        self._on_commit = []
        self._repos = None


class UnitOfWorkFactory(Protocol[R]):
    """How apps open a unit of work: `async with self.uow() as uow` (or `read_only=True`)."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork[R]: ...


class SqlUnitOfWork(UnitOfWork[R]):
    """A database transaction (SQLAlchemy) whose events go to the service's outbox table."""

    def __init__(
        self,
        db: Database,
        outbox: OutboxWriter,
        repositories: Callable[[SqlConnection], R],
        *,
        producer: str,
        read_only: bool = False,
    ) -> None:
        super().__init__(producer, read_only=read_only)
        self.db = db
        self.outbox = outbox
        self.repositories = repositories
        self._cm: AbstractAsyncContextManager[SqlConnection] | None = None
        self._session: SqlConnection | None = None

    @property
    def session(self) -> SqlConnection:
        """For the runtime's own adapters (inbox, outbox); services use `repos`."""
        if self._session is None:
            raise RuntimeError("no transaction: use `async with uow:`")
        return self._session

    async def __aenter__(self) -> Self:
        self._reset()
        self._cm = self.db.reading() if self.read_only else self.db.transaction()
        self._session = await self._cm.__aenter__()
        self._repos = self.repositories(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._cm is not None and self._session is not None
        cm, session, repos = self._cm, self._session, self._repos
        self._cm = self._session = None
        marking: list[int] = []
        try:
            if exc is None and not self.read_only:
                try:
                    if _buffers_writes(repos):
                        await repos.flush()
                    if self.events:
                        await self.outbox.write(session, self.events)
                    # Rows the relay has published ride along: no write of their own.
                    marking = await self.outbox.mark_published(session)
                except BaseException as write_error:
                    await cm.__aexit__(type(write_error), write_error, write_error.__traceback__)
                    raise
            # Commits when exc is None, rolls back otherwise (re-raising nothing itself).
            await cm.__aexit__(exc_type, exc, tb)
        except IntegrityError as clash:
            raise Conflict(f"a concurrent change won: {clash.orig}") from clash
        if isinstance(exc, IntegrityError):
            raise Conflict(f"a concurrent change won: {exc.orig}") from exc
        if exc is None:
            if marking:
                self.outbox.marked(marking)
            if self.events:
                self.outbox.committed()
            self._committed()


class OutboxWriter(Protocol):
    async def write(self, session: SqlConnection, events: list[PendingEvent]) -> None: ...

    async def mark_published(self, session: SqlConnection) -> list[int]: ...

    def marked(self, seqs: Sequence[int]) -> None: ...

    def committed(self) -> None: ...


def _field(payload: Message, name: str) -> str:
    if name in payload.DESCRIPTOR.fields_by_name:
        return str(getattr(payload, name))
    return ""
