"""Projection reads and writes. Writes are upserts (INSERT ... ON CONFLICT), never
read-then-insert: two reporting replicas on PostgreSQL never collide on a key, and no
IntegrityError reaches the consumer (which would take it for an event already handled)."""

from __future__ import annotations

from collections import Counter
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


_COUNT_EVENTS = _by_dialect(
    lambda insert: (
        insert(event_counts)
        .values(event_type=bindparam("event_type"), count=bindparam("seen"))
        .on_conflict_do_update(
            index_elements=[event_counts.c.event_type],
            set_={"count": event_counts.c.count + bindparam("seen")},
        )
    )
)
_NEW_ORDER = _by_dialect(
    lambda insert: insert(orders).on_conflict_do_nothing(index_elements=[orders.c.order_id])
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
        # Events counted in this transaction, by type: one upsert per type at commit instead
        # of one per event (a consumed batch holds many events of few types).
        self._counted: Counter[str] = Counter()

    async def count_event(self, event_type: str) -> None:
        self._counted[event_type] += 1

    async def flush(self) -> None:
        """Writes the counts gathered in this transaction (the unit of work calls it just
        before committing)."""
        if self._counted:
            await self.session.execute(
                _COUNT_EVENTS[self.dialect],
                [{"event_type": t, "seen": n} for t, n in sorted(self._counted.items())],
            )
            self._counted.clear()

    async def lock_order(self, order_id: str) -> tuple[str, StateObservation | None] | None:
        """The order's row, locked until the transaction ends: (business type, prevailing
        state observation); None when reporting has not seen the order yet."""
        row = (await self.session.execute(_ORDER_FOR_UPDATE, {"order_id": order_id})).first()
        if row is None:
            return None
        current = None
        if row.state is not None and row.state_at is not None:
            current = StateObservation(row.state, row.state_at)
        return row.business_type, current

    async def add_order(
        self, order_id: str, business_type: str, observation: StateObservation
    ) -> bool:
        """The order's first row; False when another replica inserted it first (then lock
        and update it as an existing one)."""
        result = await self.session.execute(
            _NEW_ORDER[self.dialect],
            {
                "order_id": order_id,
                "business_type": business_type,
                "state": observation.state,
                "state_at": observation.at,
                "updated_at": datetime.now(UTC),
            },
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def update_order(
        self, order_id: str, *, business_type: str | None, observation: StateObservation | None
    ) -> None:
        if business_type is None and observation is None:
            return
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
