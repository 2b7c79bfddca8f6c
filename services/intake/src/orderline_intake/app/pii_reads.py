"""The audit of clear reads of customers' personal data (docs/security.md#pii-at-rest).

Every response that shows an order's phone, identity number or address unmasked is recorded
first: one row per order, committed before the response leaves (so a read whose audit cannot
be written fails and shows nothing), in a transaction of its own, or in the write's own when a
write shows the order back (CreateOrder). Responses that show only masked values record
nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from orderline_intake.app.ports import IntakeUnitOfWork, OrderRepository
from orderline_intake.domain.masking import PiiRead, sees_pii
from orderline_runtime.clock import Clock
from orderline_runtime.unit_of_work import UnitOfWork

Uow = UnitOfWork[OrderRepository]


async def record_reads(
    uow: Uow,
    order_ids: Iterable[str],
    principal: str,
    roles: frozenset[str],
    rpc: str,
    at: datetime,
) -> int:
    """Records, in the caller's unit of work, the clear read of each order if `roles` see
    personal data unmasked (a write that shows the order back records its read with it);
    returns how many rows were written."""
    why = tuple(sorted(sees_pii(roles)))
    ids = list(dict.fromkeys(order_ids))
    if not why or not ids:
        return 0
    await uow.repos.add_pii_reads([PiiRead(i, principal, why, rpc, at) for i in ids])
    return len(ids)


class PiiReadApp:
    def __init__(self, uow: IntakeUnitOfWork, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def record(
        self, order_ids: Iterable[str], principal: str, roles: frozenset[str], rpc: str
    ) -> int:
        """Records the clear read of each order, if `roles` see personal data unmasked;
        returns how many rows were written."""
        ids = list(order_ids)
        if not sees_pii(roles) or not ids:
            return 0  # nothing to record: no transaction
        async with self.uow() as uow:
            return await record_reads(uow, ids, principal, roles, rpc, self.clock())

    async def list(
        self,
        *,
        order_id: str | None,
        principal: str | None,
        read: tuple[datetime | None, datetime | None],
        limit: int,
        before_seq: int | None,
    ) -> list[PiiRead]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.pii_reads(
                order_id=order_id,
                principal=principal,
                read=read,
                limit=limit,
                before_seq=before_seq,
            )
