"""Projection reads and writes. Writes are upserts (INSERT ... ON CONFLICT), never
read-then-insert: two reporting replicas on PostgreSQL never collide on a key, and no
IntegrityError reaches the consumer (which would take it for an event already handled)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orderline_reporting.adapters.tables import event_counts, orders, sealed_dossiers
from orderline_reporting.domain.projection import StateObservation
from orderline_runtime.database import SqlConnection


def _by_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    """One statement per dialect's INSERT (both know ON CONFLICT), built once: building a
    statement costs more than running it (docs/performance.md)."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


_COUNT_EVENT = _by_dialect(
    lambda insert: (
        insert(event_counts)
        .values(event_type=bindparam("event_type"), count=1)
        .on_conflict_do_update(
            index_elements=[event_counts.c.event_type], set_={"count": event_counts.c.count + 1}
        )
    )
)
_ENSURE_ORDER = _by_dialect(
    lambda insert: (
        insert(orders)
        .values(
            order_id=bindparam("order_id"),
            business_type="",
            state=None,
            state_at=None,
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=[orders.c.order_id])
    )
)
_ORDER_FOR_UPDATE = (
    select(orders.c.business_type, orders.c.state, orders.c.state_at)
    .where(orders.c.order_id == bindparam("order_id"))
    .with_for_update()
)
_UPDATE_ORDER = update(orders).where(orders.c.order_id == bindparam("key"))
_ADD_SEALED = _by_dialect(
    lambda insert: insert(sealed_dossiers).on_conflict_do_nothing(
        index_elements=[sealed_dossiers.c.dossier_id]
    )
)


class ProjectionRepository:
    def __init__(self, session: SqlConnection) -> None:
        self.session = session
        self.dialect = session.dialect.name

    async def count_event(self, event_type: str) -> None:
        await self.session.execute(_COUNT_EVENT[self.dialect], {"event_type": event_type})

    async def lock_order(self, order_id: str) -> tuple[str, StateObservation | None]:
        """The order's row (created empty if new), locked until the transaction ends:
        (business type, prevailing state observation)."""
        params = {"order_id": order_id}
        await self.session.execute(
            _ENSURE_ORDER[self.dialect], {**params, "now": datetime.now(UTC)}
        )
        row = (await self.session.execute(_ORDER_FOR_UPDATE, params)).one()
        current = None
        if row.state is not None and row.state_at is not None:
            current = StateObservation(row.state, row.state_at)
        return row.business_type, current

    async def update_order(
        self, order_id: str, *, business_type: str | None, observation: StateObservation | None
    ) -> None:
        values: dict[str, Any] = {"key": order_id, "updated_at": datetime.now(UTC)}
        if business_type is not None:
            values["business_type"] = business_type
        if observation is not None:
            values["state"] = observation.state
            values["state_at"] = observation.at
        await self.session.execute(_UPDATE_ORDER, values)

    async def add_sealed_dossier(self, dossier_id: str, order_id: str, sequence: int) -> None:
        await self.session.execute(
            _ADD_SEALED[self.dialect],
            {
                "dossier_id": dossier_id,
                "order_id": order_id,
                "sequence": sequence,
                "sealed_seen_at": datetime.now(UTC),
            },
        )

    # --- reads ----------------------------------------------------------------------------

    async def orders_by_state(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(orders.c.state, func.count())
            .where(orders.c.state.is_not(None))
            .group_by(orders.c.state)
        )
        return {state: int(n) for state, n in rows.all()}

    async def orders_by_business_type(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(orders.c.business_type, func.count())
            .where(orders.c.state.is_not(None))
            .group_by(orders.c.business_type)
        )
        return {business_type: int(n) for business_type, n in rows.all()}

    async def dossiers_sealed(self) -> int:
        return int(
            (
                await self.session.execute(select(func.count()).select_from(sealed_dossiers))
            ).scalar_one()
        )

    async def events_projected(self) -> int:
        total = (await self.session.execute(select(func.sum(event_counts.c.count)))).scalar_one()
        return int(total or 0)

    async def event_counts(self) -> dict[str, int]:
        rows = await self.session.execute(select(event_counts.c.event_type, event_counts.c.count))
        return {event_type: int(n) for event_type, n in rows.all()}
