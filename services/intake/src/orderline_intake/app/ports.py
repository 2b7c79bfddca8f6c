"""What the use cases need from storage, as an interface (the SQL adapter and the in-memory
one used by unit tests both implement it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from orderline_intake.domain.order import Order
from orderline_runtime.unit_of_work import UnitOfWorkFactory


class OrderRepository(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def by_request_id(self, client_request_id: str) -> Order | None: ...

    async def list_orders(
        self, *, limit: int, after_id: str | None, state: str | None, business_type: str | None
    ) -> list[Order]: ...

    async def versions_since(
        self, since: datetime, order_ids: Sequence[str] | None
    ) -> list[tuple[str, int]]:
        """(id, version) of the orders changed since `since` (of `order_ids` if given)."""
        ...

    async def many(self, order_ids: Sequence[str]) -> list[Order]: ...

    async def open_duplicates(self, order: Order) -> list[str]:
        """Ids of other orders not in a final state with the order's customer identity,
        address and business type."""
        ...

    async def review_queue(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        """Acknowledged orders, oldest in the queue first, after (queued_at, id)."""
        ...

    async def add(self, order: Order) -> None: ...

    async def save(self, order: Order) -> None:
        """Writes the order if it is still at the version it was loaded at, and increments
        it; Conflict when another transaction wrote it since."""
        ...


IntakeUnitOfWork = UnitOfWorkFactory[OrderRepository]
