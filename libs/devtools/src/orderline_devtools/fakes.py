"""An in-memory unit of work, for testing a service's use cases and handlers without I/O.

A test builds the service's in-memory repositories, wraps them in an `InMemoryStore` and
hands `store.uow` to the app where the bootstrap would hand `service.uow`:

    store = InMemoryStore(InMemoryOrders(), producer="intake")
    app = OrderApp(store.uow, catalogue, clock)
    await app.create(...)
    assert [e.spec.event_type for e in store.published] == [...]

Like the real one, a unit of work commits its repositories' changes and its events together or
not at all: it works on a deep copy of the committed repositories and swaps it in on commit.
"""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Generic, Self, TypeVar

from google.protobuf.message import Message

from orderline_runtime.unit_of_work import BufferedWrites, PendingEvent, UnitOfWork

R = TypeVar("R")
M = TypeVar("M", bound=Message)


class InMemoryStore(Generic[R]):
    """The committed state: repositories and every event committed, in order."""

    def __init__(self, repos: R, *, producer: str) -> None:
        self.repos = repos
        self.producer = producer
        self.published: list[PendingEvent] = []
        self.commits = 0

    def uow(self, *, read_only: bool = False) -> InMemoryUnitOfWork[R]:
        return InMemoryUnitOfWork(self, read_only=read_only)

    def payloads(self, payload_type: type[M]) -> list[M]:
        """The committed events' payloads of one type, in order."""
        return [e.payload for e in self.published if isinstance(e.payload, payload_type)]

    @property
    def event_types(self) -> list[str]:
        return [e.spec.event_type for e in self.published]


class InMemoryUnitOfWork(UnitOfWork[R]):
    def __init__(self, store: InMemoryStore[R], *, read_only: bool = False) -> None:
        super().__init__(store.producer, read_only=read_only)
        self.store = store

    async def __aenter__(self) -> Self:
        self._reset()
        self._repos = copy.deepcopy(self.store.repos)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        repos, self._repos = self._repos, None
        if exc is not None or self.read_only:
            return
        assert repos is not None
        if isinstance(repos, BufferedWrites):
            await repos.flush()
        self.store.repos = repos
        self.store.published.extend(self.events)
        self.store.commits += 1
        self._committed()
