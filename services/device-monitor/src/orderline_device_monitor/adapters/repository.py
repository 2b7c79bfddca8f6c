"""Reads and writes of device-monitor's tables, inside a unit of work's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orderline_device_monitor.adapters.tables import (
    alarms,
    anomalies,
    device_transitions,
    device_usage,
    devices,
    fitness_checks,
)
from orderline_device_monitor.app.records import (
    ALARM_CLEARED,
    ALARM_RAISED,
    AlarmFilter,
    AlarmRecord,
    AnomalyRecord,
    Usage,
)
from orderline_device_monitor.domain.evaluator import Transition
from orderline_device_monitor.domain.health import Category, Severity
from orderline_runtime.database import SqlConnection


def _usage_upsert(table_insert: Callable[[Table], Any]) -> Any:
    # A later job's claim wins; an earlier one arriving late (events may be out of order)
    # changes nothing.
    stmt = table_insert(device_usage)
    return stmt.on_conflict_do_update(
        index_elements=["device_id"],
        set_={k: stmt.excluded[k] for k in ("order_id", "job_id", "started_at", "event_id")},
        where=device_usage.c.started_at <= stmt.excluded.started_at,
    )


# Statements each order runs (a fitness check, a device taken into use), built once: building
# a statement costs more than running it (docs/performance.md).
_RECORD_USAGE = {
    "postgresql": _usage_upsert(postgresql.insert),
    "sqlite": _usage_upsert(sqlite.insert),
}
_USAGE_OF = select(device_usage).where(device_usage.c.device_id == bindparam("key"))
_INSERT_FITNESS_CHECK = insert(fitness_checks)


def _alarm(row: Any) -> AlarmRecord:
    return AlarmRecord(
        id=row.id,
        device_id=row.device_id,
        category=Category(row.category),
        state=row.state,
        detail=row.detail,
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        order_id=row.order_id,
        severity=Severity[row.severity.upper()] if row.severity else None,
        rules_version=row.rules_version,
        probable_cause=row.probable_cause,
        repeat_count=row.repeat_count,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
        cleared_by=row.cleared_by,
        clear_reason=row.clear_reason,
        is_root_cause=row.is_root_cause,
        parent_alarm_id=row.parent_alarm_id,
        suppressed=row.suppressed,
        updated_at=row.updated_at,
    )


class DeviceRepository:
    """Device-monitor's tables, inside one unit of work's transaction."""

    def __init__(self, session: SqlConnection) -> None:
        self.session = session

    def _upsert(self, table: Table) -> Any:
        """INSERT … ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
        if self.session.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def known_devices(self) -> list[str]:
        return list((await self.session.scalars(select(devices.c.device_id))).all())

    async def register_devices(self, device_ids: Iterable[str], at: datetime) -> None:
        """Records devices seen for the first time (a device already recorded stays as it is)."""
        rows = [{"device_id": d, "first_seen_at": at} for d in device_ids]
        if rows:
            stmt = self._upsert(devices).on_conflict_do_nothing(index_elements=["device_id"])
            await self.session.execute(stmt, rows)

    async def mark_device_changed(self, device_id: str, at: datetime) -> None:
        await self.session.execute(
            update(devices).where(devices.c.device_id == device_id).values(last_change_at=at)
        )

    async def open_alarms(self) -> list[AlarmRecord]:
        rows = await self.session.execute(select(alarms).where(alarms.c.state == ALARM_RAISED))
        return [_alarm(r) for r in rows]

    async def raise_alarm(
        self,
        *,
        alarm_id: str,
        device_id: str,
        category: Category,
        detail: str,
        raised_at: datetime,
        order_id: str | None,
        severity: Severity | None = None,
        rules_version: str | None = None,
        probable_cause: str | None = None,
        is_root_cause: bool = False,
        parent_alarm_id: str | None = None,
    ) -> None:
        await self.session.execute(
            insert(alarms).values(
                id=alarm_id,
                device_id=device_id,
                category=category.value,
                state=ALARM_RAISED,
                detail=detail,
                raised_at=raised_at,
                order_id=order_id,
                severity=severity.label if severity else None,
                rules_version=rules_version,
                probable_cause=probable_cause,
                is_root_cause=is_root_cause,
                parent_alarm_id=parent_alarm_id,
                suppressed=parent_alarm_id is not None,
            )
        )

    async def grade_alarm(
        self, alarm_id: str, severity: Severity, at: datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"severity": severity.label}
        if at is not None:
            values["updated_at"] = at
        await self.session.execute(update(alarms).where(alarms.c.id == alarm_id).values(values))

    async def get_alarm(self, alarm_id: str) -> AlarmRecord | None:
        row = (await self.session.execute(select(alarms).where(alarms.c.id == alarm_id))).first()
        return _alarm(row) if row is not None else None

    async def repeat_alarm(self, alarm_id: str, repeat_count: int, at: datetime) -> None:
        await self.session.execute(
            update(alarms)
            .where(alarms.c.id == alarm_id)
            .values(repeat_count=repeat_count, updated_at=at)
        )

    async def correlate_alarm(self, alarm_id: str, parent_id: str | None, at: datetime) -> None:
        """Under a root (suppressed), or released from it: the former parent stays on record."""
        values: dict[str, Any] = {"suppressed": parent_id is not None, "updated_at": at}
        if parent_id is not None:
            values["parent_alarm_id"] = parent_id
        await self.session.execute(update(alarms).where(alarms.c.id == alarm_id).values(values))

    async def acknowledge_alarm(self, alarm_id: str, by: str, at: datetime) -> bool:
        """The first acknowledgement of an open alarm stands; False when nothing changed."""
        result = await self.session.execute(
            update(alarms)
            .where(
                alarms.c.id == alarm_id,
                alarms.c.state == ALARM_RAISED,
                alarms.c.acknowledged_by.is_(None),
            )
            .values(acknowledged_by=by, acknowledged_at=at, updated_at=at)
        )
        return bool(result.rowcount)

    async def record_transitions(
        self, transitions: Sequence[Transition], new_id: Callable[[], str]
    ) -> None:
        rows = [
            {
                "id": new_id(),
                "device_id": t.device_id,
                "kind": t.kind.value,
                "category": t.category.value if t.category else None,
                "severity": t.severity.label if t.severity else None,
                "previous_severity": t.previous_severity.label if t.previous_severity else None,
                "detail": t.detail,
                "rules_version": t.rules_version,
                "sample_at": t.sample_at,
                "at": t.at,
            }
            for t in transitions
        ]
        if rows:
            await self.session.execute(insert(device_transitions), rows)

    async def transitions_of_device(self, device_id: str) -> list[dict[str, Any]]:
        """Oldest first (ids are UUIDv7, in the order they were made)."""
        rows = await self.session.execute(
            select(device_transitions)
            .where(device_transitions.c.device_id == device_id)
            .order_by(device_transitions.c.id)
        )
        return [dict(r._mapping) for r in rows]

    async def clear_alarm(
        self,
        alarm_id: str,
        cleared_at: datetime,
        *,
        cleared_by: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """False when the alarm was not open (cleared meanwhile)."""
        result = await self.session.execute(
            update(alarms)
            .where(alarms.c.id == alarm_id, alarms.c.state == ALARM_RAISED)
            .values(
                state=ALARM_CLEARED,
                cleared_at=cleared_at,
                cleared_by=cleared_by,
                clear_reason=reason,
                suppressed=False,
            )
        )
        return bool(result.rowcount)

    async def list_alarms(
        self,
        *,
        device_id: str | None = None,
        only_open: bool = False,
        before_id: str | None,
        limit: int,
        where: AlarmFilter | None = None,
    ) -> list[AlarmRecord]:
        """Newest first (alarm ids are UUIDv7, so id order is raise order); keyset on the id."""
        where = where or AlarmFilter(device_id=device_id, only_open=only_open)
        stmt = select(alarms).order_by(alarms.c.id.desc()).limit(limit)
        if where.device_id:
            stmt = stmt.where(alarms.c.device_id == where.device_id)
        if where.only_open:
            stmt = stmt.where(alarms.c.state == ALARM_RAISED)
        if where.states:
            stmt = stmt.where(alarms.c.state.in_(sorted(where.states)))
        if where.severities:
            stmt = stmt.where(alarms.c.severity.in_(sorted(s.label for s in where.severities)))
        if where.categories:
            stmt = stmt.where(alarms.c.category.in_(sorted(c.value for c in where.categories)))
        if where.acknowledged is True:
            stmt = stmt.where(alarms.c.acknowledged_by.is_not(None))
        elif where.acknowledged is False:
            stmt = stmt.where(alarms.c.acknowledged_by.is_(None))
        if before_id:
            stmt = stmt.where(alarms.c.id < before_id)
        return [_alarm(r) for r in await self.session.execute(stmt)]

    async def record_anomaly(
        self,
        *,
        anomaly_id: str,
        alarm_id: str,
        device_id: str,
        category: Category,
        readings: Mapping[str, float | bool],
        snapshot: Mapping[str, float | bool],
        first_seen_at: datetime,
        order_id: str | None,
        job_id: str | None,
        recorded_at: datetime,
    ) -> None:
        await self.session.execute(
            insert(anomalies).values(
                id=anomaly_id,
                alarm_id=alarm_id,
                device_id=device_id,
                category=category.value,
                readings=dict(readings),
                snapshot=dict(snapshot),
                first_seen_at=first_seen_at,
                order_id=order_id,
                job_id=job_id,
                recorded_at=recorded_at,
            )
        )

    async def anomalies_of_device(self, device_id: str) -> list[AnomalyRecord]:
        rows = await self.session.execute(
            select(anomalies).where(anomalies.c.device_id == device_id).order_by(anomalies.c.id)
        )
        return [
            AnomalyRecord(
                id=r.id,
                alarm_id=r.alarm_id,
                device_id=r.device_id,
                category=Category(r.category),
                readings=r.readings,
                snapshot=r.snapshot,
                first_seen_at=r.first_seen_at,
                order_id=r.order_id,
                job_id=r.job_id,
                recorded_at=r.recorded_at,
            )
            for r in rows
        ]

    async def usage_of(self, device_id: str) -> Usage | None:
        row = (await self.session.execute(_USAGE_OF, {"key": device_id})).first()
        if row is None:
            return None
        return Usage(order_id=row.order_id, job_id=row.job_id, started_at=row.started_at)

    async def record_usage(
        self,
        *,
        device_id: str,
        order_id: str,
        job_id: str,
        started_at: datetime,
        event_id: str,
    ) -> None:
        """The device is in use for this order from `started_at`, unless a later job already
        claimed it (events may arrive out of order)."""
        values = {
            "device_id": device_id,
            "order_id": order_id,
            "job_id": job_id,
            "started_at": started_at,
            "event_id": event_id,
        }
        await self.session.execute(_RECORD_USAGE[self.session.dialect.name], values)

    async def record_fitness_check(
        self,
        *,
        check_id: str,
        device_id: str,
        order_id: str | None,
        fit: bool,
        state: str,
        reasons: Sequence[str],
        alarm_id: str | None,
        checked_by: str,
        checked_at: datetime,
    ) -> None:
        await self.session.execute(
            _INSERT_FITNESS_CHECK,
            {
                "id": check_id,
                "device_id": device_id,
                "order_id": order_id,
                "fit": fit,
                "state": state,
                "reasons": list(reasons),
                "alarm_id": alarm_id,
                "checked_by": checked_by,
                "checked_at": checked_at,
            },
        )
