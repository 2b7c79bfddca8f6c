"""What the use cases need from storage, as an interface (the SQL adapter and the in-memory
one used by unit tests both implement it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from orderline_intake.domain.cancellation import Cancellation
from orderline_intake.domain.communication import Communication
from orderline_intake.domain.customer_hash import CustomerHashes
from orderline_intake.domain.followup import CaseState, FollowUp, TroubleCase
from orderline_intake.domain.masking import PiiRead
from orderline_intake.domain.order import Order
from orderline_runtime.unit_of_work import UnitOfWorkFactory


class OrderRepository(Protocol):
    async def get(
        self, order_id: str, *, for_update: bool = False, open_pii: bool = True
    ) -> Order | None:
        """`open_pii` False: the customer's sealed fields (phone, identity number, addresses)
        are opened when first read instead of now, for a use case that seldom reads them; a
        field that cannot be opened then fails where it is read."""
        ...

    async def by_request_id(self, client_request_id: str) -> Order | None: ...

    async def list_orders(
        self,
        *,
        limit: int,
        after_id: str | None,
        state: str | None,
        business_type: str | None,
        created: tuple[datetime | None, datetime | None] = (None, None),
        customer: tuple[str, str] | None = None,
    ) -> list[Order]:
        """Newest first; `created` is [from, before), either end open when None; `customer`
        (phone hash, identity number hash): orders whose customer has either."""
        ...

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

    # SLA and jeopardy (domain/sla.py).

    async def due_for_jeopardy(self, now: datetime, limit: int) -> list[str]:
        """Ids of orders with a milestone neither reached nor raised due before `now`,
        earliest first."""
        ...

    async def jeopardy_list(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        """Orders in jeopardy, oldest due first, after (due_at, id)."""
        ...

    # Keyed customer hashes (domain/customer_hash.py).

    async def unhashed(self, key_id: str, limit: int) -> list[tuple[str, str, str, str]]:
        """(id, phone, identity number, key id) of orders not hashed with `key_id`."""
        ...

    async def set_hashes(self, order_id: str, hashes: CustomerHashes, was_key_id: str) -> bool:
        """Writes the hashes if the row is still hashed with `was_key_id`; False otherwise."""
        ...

    async def save(self, order: Order) -> None:
        """Writes the order if it is still at the version it was loaded at, and increments
        it; Conflict when another transaction wrote it since."""
        ...

    async def business_type_of(self, order_id: str) -> str | None:
        """The order's business type; None when there is no such order."""
        ...

    async def device_of(self, order_id: str) -> str | None:
        """The order's device id; None when there is no such order."""
        ...

    # The communication log, follow-ups and trouble cases of completed orders.

    async def add_communication(self, entry: Communication) -> None: ...

    async def communications(
        self, order_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Communication]:
        """The order's log, oldest first, after (at, id)."""
        ...

    async def add_follow_ups(self, scheduled: Sequence[FollowUp]) -> None:
        """Inserts them all in one statement (the completion path: issue #8)."""
        ...

    async def follow_up(
        self, follow_up_id: str, *, for_update: bool = False
    ) -> FollowUp | None: ...

    async def save_follow_up(self, follow_up: FollowUp) -> None: ...

    async def follow_ups(
        self,
        *,
        order_id: str | None,
        overdue_at: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[FollowUp]:
        """Earliest due first, after (due_at, id); with `overdue_at`, only those not recorded
        and due before it."""
        ...

    async def add_case(self, case: TroubleCase) -> None: ...

    async def case(self, case_id: str, *, for_update: bool = False) -> TroubleCase | None: ...

    async def save_case(self, case: TroubleCase) -> None: ...

    async def cases(
        self,
        *,
        order_id: str | None,
        state: CaseState | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[TroubleCase]:
        """Oldest opened first, after (opened_at, id)."""
        ...

    # The audit of clear reads of personal data.

    async def add_pii_reads(self, reads: Sequence[PiiRead]) -> None:
        """Inserts them all in one statement."""
        ...

    async def pii_reads(
        self,
        *,
        order_id: str | None,
        principal: str | None,
        read: tuple[datetime | None, datetime | None],
        limit: int,
        before_seq: int | None,
    ) -> list[PiiRead]:
        """Newest first, before `before_seq`; `read` is [from, before)."""
        ...

    # Cancellation requests.

    async def add_cancellation(self, cancellation: Cancellation) -> None: ...

    async def cancellation(
        self, cancellation_id: str, *, for_update: bool = False
    ) -> Cancellation | None: ...

    async def cancellation_by_request_id(self, client_request_id: str) -> Cancellation | None: ...

    async def save_cancellation(self, cancellation: Cancellation) -> None: ...

    async def cancellations(
        self, *, order_id: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[Cancellation]:
        """Newest first, before (requested_at, id)."""
        ...


IntakeUnitOfWork = UnitOfWorkFactory[OrderRepository]
