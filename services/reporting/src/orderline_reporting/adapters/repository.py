"""Projection reads and writes. Writes are upserts (INSERT ... ON CONFLICT), never
read-then-insert: two reporting replicas on PostgreSQL never collide on a key, and no
IntegrityError reaches the consumer (which would take it for an event already handled)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from orderline_reporting.adapters.tables import (
    daily_reports,
    event_counts,
    metadata,
    order_facts,
    orders,
    projection_checkpoints,
    projection_head,
    sealed_dossiers,
)
from orderline_reporting.domain import digest as dg
from orderline_reporting.domain.digest import OrderRow, SealedRow
from orderline_reporting.domain.facts import CREATED, Fact
from orderline_reporting.domain.figures import CohortOrder
from orderline_reporting.domain.projection import StateObservation
from orderline_runtime.database import SqlConnection

_INBOX = metadata.tables["inbox"]
# What a rebuild replaces (docs/reporting.md), each with the key it is copied in order of.
# Not `daily_reports` (documents as they were produced, not a projection) nor the outbox.
_REPLACED: tuple[tuple[Table, Column[Any]], ...] = (
    (orders, orders.c.order_id),
    (event_counts, event_counts.c.event_type),
    (sealed_dossiers, sealed_dossiers.c.dossier_id),
    (order_facts, order_facts.c.event_id),
    (projection_head, projection_head.c.name),
    (projection_checkpoints, projection_checkpoints.c.number),
)
_COPY_PAGE = 2000  # rows read from the scratch database and written per statement


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


# A transaction's report facts, in one statement at commit. Each fact is keyed by its event's
# id, which the inbox lets through once per committed transaction, so every row is new; ON
# CONFLICT DO NOTHING only keeps a stray duplicate from failing the batch.
_ADD_FACTS = _by_dialect(
    lambda insert: insert(order_facts).on_conflict_do_nothing(
        index_elements=[order_facts.c.event_id]
    )
)
_FACT_COLUMNS = [c.name for c in order_facts.columns]


def fact_row(fact: Fact) -> dict[str, Any]:
    """A fact's row: its fields by name. What `asdict` gives (every field is immutable), without
    its deep copy of each field: 0.5 µs a fact instead of 30 on this machine."""
    return dict(vars(fact))


_SAVE_DAILY = _by_dialect(
    lambda insert: insert(daily_reports).on_conflict_do_nothing(
        index_elements=[daily_reports.c.day, daily_reports.c.language, daily_reports.c.format]
    )
)


@dataclass(frozen=True)
class DailyReport:
    day: date
    language: str
    format: str
    media_type: str
    sha256: str
    content: bytes
    generated_at: datetime


_HEAD = "live"
_LOCK_HEAD = (
    select(projection_head.c.accumulator, projection_head.c.position, projection_head.c.checkpoints)
    .where(projection_head.c.name == _HEAD)
    .with_for_update()
)
_NEW_HEAD = _by_dialect(
    lambda insert: (
        insert(projection_head)
        .values(name=_HEAD, accumulator=dg.EMPTY_ACCUMULATOR, position="{}", checkpoints=0)
        .on_conflict_do_nothing(index_elements=[projection_head.c.name])
    )
)
_UPDATE_HEAD = update(projection_head).where(projection_head.c.name == _HEAD)
_ADD_CHECKPOINT = insert(projection_checkpoints)


@dataclass(frozen=True)
class Head:
    """The projection's digest state as committed (domain/digest.py)."""

    accumulator: int
    position: dg.Position
    checkpoints: int

    @property
    def digest(self) -> str:
        return dg.digest(self.accumulator)

    @property
    def events_applied(self) -> int:
        return sum(p.applied for p in self.position.values())


@dataclass(frozen=True)
class Checkpoint:
    number: int
    position: dg.Position
    digest: str


def _head(row: Any) -> Head:
    return Head(
        dg.accumulator_of(row.accumulator), dg.position_of(row.position), int(row.checkpoints)
    )


class ProjectionRepository:
    def __init__(self, session: SqlConnection) -> None:
        self.session = session
        self.dialect = session.dialect.name
        # Events counted in this transaction, by type: one upsert per type at commit instead
        # of one per event (a consumed batch holds many events of few types).
        self._counted: Counter[str] = Counter()
        # What this transaction changed in the digest's sum (row hashes in minus out), and the
        # stream sequences of the events it applied: written with the counts at commit.
        self._delta = 0
        self._applied: dict[str, list[int]] = {}
        self._latest: datetime | None = None  # the latest producer time among them
        self._facts: dict[str, Fact] = {}

    def add_fact(self, fact: Fact) -> None:
        """A report fact, written with the transaction's others at commit."""
        if fact.event_id not in self._facts:
            self._facts[fact.event_id] = fact
            self._delta += dg.fact_hash(fact)

    async def count_event(self, event_type: str) -> None:
        self._counted[event_type] += 1

    def applied(self, stream: str, sequence: int, at: datetime) -> None:
        """One event of `stream` at `sequence` (0: unknown), recorded by its producer `at`,
        applied in this transaction."""
        self._applied.setdefault(stream, []).append(sequence)
        if self._latest is None or at > self._latest:
            self._latest = at

    async def flush(self) -> None:
        """Writes what this transaction gathered (the unit of work calls it just before
        committing): the report facts and the counts, each in one statement, then the digest
        head and one checkpoint. Five statements per transaction whatever its size; nothing is
        rescanned."""
        if self._facts:
            await self.session.execute(
                _ADD_FACTS[self.dialect], [fact_row(f) for f in self._facts.values()]
            )
            self._facts = {}
        if self._counted:
            await self.session.execute(
                _COUNT_EVENTS[self.dialect],
                [{"event_type": t, "seen": n} for t, n in sorted(self._counted.items())],
            )
            self._delta += sum(n * dg.count_unit(t) for t, n in self._counted.items())
            self._counted.clear()
        if not self._applied and not self._delta:
            return
        head = await self._lock_head()
        accumulator = dg.combine(head.accumulator, self._delta)
        position = dg.advance(head.position, self._applied)
        number = head.checkpoints + 1
        text = dg.position_text(position)
        await self.session.execute(
            _UPDATE_HEAD,
            {
                "accumulator": dg.accumulator_hex(accumulator),
                "position": text,
                "checkpoints": number,
            },
        )
        await self.session.execute(
            _ADD_CHECKPOINT,
            {
                "number": number,
                "position": text,
                "digest": dg.digest(accumulator),
                "events_applied": sum(p.applied for p in position.values()),
                "event_hour": (
                    int(self._latest.timestamp()) // 3600 if self._latest is not None else None
                ),
            },
        )
        self._delta = 0
        self._applied = {}
        self._latest = None

    async def _lock_head(self) -> Head:
        row = (await self.session.execute(_LOCK_HEAD)).first()
        if row is None:  # tables made without the migration's seed row
            await self.session.execute(_NEW_HEAD[self.dialect])
            row = (await self.session.execute(_LOCK_HEAD)).first()
            assert row is not None
        return _head(row)

    async def lock_order(self, order_id: str) -> OrderRow | None:
        """The order's row, locked until the transaction ends; None when reporting has not
        seen the order yet."""
        row = (await self.session.execute(_ORDER_FOR_UPDATE, {"order_id": order_id})).first()
        if row is None:
            return None
        return OrderRow(order_id, row.business_type, row.state, row.state_at)

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
            },
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        self._delta += dg.order_hash(
            OrderRow(order_id, business_type, observation.state, observation.at)
        )
        return True

    async def update_order(
        self,
        before: OrderRow,
        *,
        business_type: str | None,
        observation: StateObservation | None,
    ) -> None:
        """Changes the row `lock_order` read as `before` (still locked)."""
        if business_type is None and observation is None:
            return
        values: dict[str, Any] = {"key": before.order_id}
        after = before
        if business_type is not None:
            values["business_type"] = business_type
            after = OrderRow(after.order_id, business_type, after.state, after.state_at)
        if observation is not None:
            values["state"] = observation.state
            values["state_at"] = observation.at
            after = OrderRow(after.order_id, after.business_type, observation.state, observation.at)
        await self.session.execute(_UPDATE_ORDER, values)
        self._delta += dg.order_hash(after) - dg.order_hash(before)

    async def add_sealed_dossier(
        self, dossier_id: str, order_id: str, sequence: int, sealed_at: datetime
    ) -> None:
        result = await self.session.execute(
            _ADD_SEALED[self.dialect],
            {
                "dossier_id": dossier_id,
                "order_id": order_id,
                "sequence": sequence,
                "sealed_at": sealed_at,
            },
        )
        if getattr(result, "rowcount", 0) == 1:
            self._delta += dg.sealed_hash(SealedRow(dossier_id, order_id, sequence, sealed_at))

    # --- digest reads ---------------------------------------------------------------------

    async def head(self) -> Head:
        row = (
            await self.session.execute(
                select(
                    projection_head.c.accumulator,
                    projection_head.c.position,
                    projection_head.c.checkpoints,
                ).where(projection_head.c.name == _HEAD)
            )
        ).first()
        if row is None:
            return Head(0, {}, 0)
        return _head(row)

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self.session.execute(
            select(
                projection_checkpoints.c.number,
                projection_checkpoints.c.position,
                projection_checkpoints.c.digest,
            ).order_by(projection_checkpoints.c.number)
        )
        return [Checkpoint(int(r.number), dg.position_of(r.position), r.digest) for r in rows]

    async def recomputed_accumulator(self) -> int:
        """The digest's sum from a full scan of every projected row (audits the incremental
        one; never on the event path)."""
        order_rows = [
            OrderRow(r.order_id, r.business_type, r.state, r.state_at)
            for r in await self.session.execute(
                select(orders.c.order_id, orders.c.business_type, orders.c.state, orders.c.state_at)
            )
        ]
        sealed_rows = [
            SealedRow(r.dossier_id, r.order_id, int(r.sequence), r.sealed_at)
            for r in await self.session.execute(
                select(
                    sealed_dossiers.c.dossier_id,
                    sealed_dossiers.c.order_id,
                    sealed_dossiers.c.sequence,
                    func.coalesce(
                        sealed_dossiers.c.sealed_at, sealed_dossiers.c.sealed_seen_at
                    ).label("sealed_at"),
                )
            )
        ]
        return dg.full_accumulator(
            order_rows, sealed_rows, await self.event_counts(), await self.facts_since(None)
        )

    async def prune_checkpoints(self, keep: int) -> int:
        """Deletes every checkpoint but the last `keep` and the last of each hour of event time
        (checkpoints without an hour count as one hour); how many it deleted. One statement:
        a checkpoint recorded meanwhile is newer than the last `keep` and untouched."""
        newest = (
            await self.session.execute(select(func.max(projection_checkpoints.c.number)))
        ).scalar_one()
        if newest is None or newest <= keep:
            return 0
        hourly = select(func.max(projection_checkpoints.c.number)).group_by(
            projection_checkpoints.c.event_hour
        )
        result = await self.session.execute(
            delete(projection_checkpoints).where(
                projection_checkpoints.c.number <= newest - keep,
                projection_checkpoints.c.number.not_in(hourly),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- replacement by a rebuild ---------------------------------------------------------

    async def hold_consumers(self) -> None:
        """Until this transaction ends, no consumer transaction of reporting commits.

        PostgreSQL: an ACCESS EXCLUSIVE lock on the inbox, the table every consumer
        transaction reads first, before any projected row. Taken first here, so this waits
        for the consumer transactions under way to end (none waits for this one: no deadlock)
        and holds back the later ones until the commit; readers of the reports take no lock
        on the inbox and go on reading their snapshot. SQLite: this transaction began with
        BEGIN IMMEDIATE and holds the database's one write lock already."""
        if self.dialect == "postgresql":
            await self.session.execute(text(f"LOCK TABLE {_INBOX.name} IN ACCESS EXCLUSIVE MODE"))

    async def replace_with(self, source: SqlConnection, consumer: str) -> dict[str, int]:
        """Every projected table, the digest head, the checkpoints and `consumer`'s inbox rows
        replaced by `source`'s (a rebuild's scratch database); rows copied, by table.

        DELETE, never TRUNCATE: TRUNCATE is not MVCC-safe on PostgreSQL (a report reading an
        older snapshot would see the tables empty), while rows deleted and inserted in this
        transaction reach readers at its commit, all at once."""
        for table, _ in _REPLACED:
            await self.session.execute(delete(table))
        await self.session.execute(delete(_INBOX).where(_INBOX.c.consumer == consumer))
        copied: dict[str, int] = {}
        for table, key in (*_REPLACED, (_INBOX, _INBOX.c.event_id)):
            copied[table.name] = await self._copy(source, table, key)
        return copied

    async def _copy(self, source: SqlConnection, table: Table, key: Column[Any]) -> int:
        """`table`'s rows from `source`, a page at a time in `key` order (a large projection
        is never held in memory whole)."""
        copied = 0
        after: Any = None
        while True:
            query = select(table).order_by(key).limit(_COPY_PAGE)
            if after is not None:
                query = query.where(key > after)
            rows = (await source.execute(query)).all()
            if not rows:
                return copied
            await self.session.execute(insert(table), [dict(r._mapping) for r in rows])
            copied += len(rows)
            after = rows[-1]._mapping[key.name]

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

    # --- report reads ---------------------------------------------------------------------

    async def facts_since(self, start: datetime | None) -> list[Fact]:
        """Every report fact at or after `start` (all of them when None)."""
        query = select(order_facts)
        if start is not None:
            query = query.where(order_facts.c.at >= start)
        rows = await self.session.execute(query)
        return [Fact(**{c: getattr(r, c) for c in _FACT_COLUMNS}) for r in rows]

    async def latest_fact_at(self) -> datetime | None:
        """The producer time of the latest report fact: how far the projection has got."""
        at: datetime | None = (
            await self.session.execute(select(func.max(order_facts.c.at)))
        ).scalar_one()
        return at

    async def cohort(self, start: datetime, end: datetime) -> list[CohortOrder]:
        """The orders created in [start, end), with the state they are in now."""
        rows = await self.session.execute(
            select(
                order_facts.c.order_id,
                order_facts.c.at,
                orders.c.business_type,
                orders.c.state,
            )
            .join(orders, orders.c.order_id == order_facts.c.order_id, isouter=True)
            .where(
                order_facts.c.kind == CREATED,
                order_facts.c.at >= start,
                order_facts.c.at < end,
            )
        )
        result: dict[str, CohortOrder] = {}
        for r in rows:
            result.setdefault(
                r.order_id, CohortOrder(r.order_id, r.business_type or "", r.state or "", r.at)
            )
        return list(result.values())

    # --- daily reports --------------------------------------------------------------------

    async def save_daily_report(self, report: DailyReport) -> bool:
        """False when that day's document in that language and format exists already."""
        result = await self.session.execute(_SAVE_DAILY[self.dialect], asdict(report))
        return getattr(result, "rowcount", 0) == 1

    async def daily_reports(self, first: date | None = None, limit: int = 100) -> list[DailyReport]:
        """Newest first, without content when listing is all that is wanted."""
        query = select(daily_reports).order_by(
            daily_reports.c.day.desc(), daily_reports.c.language, daily_reports.c.format
        )
        if first is not None:
            query = query.where(daily_reports.c.day >= first)
        rows = await self.session.execute(query.limit(limit))
        return [DailyReport(**r._mapping) for r in rows]

    async def daily_report(self, day: date, language: str, fmt: str) -> DailyReport | None:
        row = (
            await self.session.execute(
                select(daily_reports).where(
                    daily_reports.c.day == day,
                    daily_reports.c.language == language,
                    daily_reports.c.format == fmt,
                )
            )
        ).first()
        return DailyReport(**row._mapping) if row is not None else None
