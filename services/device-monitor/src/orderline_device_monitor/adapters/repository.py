"""Reads and writes of device-monitor's tables, inside a unit of work's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
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
    ticket_requests,
    tickets,
)
from orderline_device_monitor.app.records import (
    ALARM_CLEARED,
    ALARM_RAISED,
    DEVICE_OBJECT,
    AlarmFilter,
    AlarmRecord,
    AnomalyFilter,
    AnomalyRecord,
    TicketFilter,
    TicketRequest,
    Usage,
)
from orderline_device_monitor.domain.evaluator import Transition
from orderline_device_monitor.domain.health import Category, Severity
from orderline_device_monitor.domain.tickets import Note, Ticket, TicketState
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
        alarmed_object_type=row.alarmed_object_type or DEVICE_OBJECT,
    )


def _anomaly(r: Any) -> AnomalyRecord:
    return AnomalyRecord(
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
        device_model=r.device_model,
        detail=r.detail,
        last_seen_at=r.last_seen_at,
        samples=list(r.samples or []),
        onset_index=r.onset_index,
        actions=list(r.actions or []),
        ticket_id=r.ticket_id,
        root_cause_code=r.root_cause_code,
        corrective_action_code=r.corrective_action_code,
        resolution_note=r.resolution_note,
        closed_at=r.closed_at,
    )


def _ticket_row(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "device_id": t.device_id,
        "state": t.state.value,
        "reason_code": t.reason_code,
        "category": t.category.value if t.category else None,
        "description": t.description,
        "order_id": t.order_id,
        "alarm_id": t.alarm_id,
        "opened_at": t.opened_at,
        "opened_by": t.opened_by,
        "updated_at": t.updated_at,
        "root_cause_code": t.root_cause_code,
        "corrective_action_code": t.corrective_action_code,
        "resolution_note": t.resolution_note,
        "resolved_by": t.resolved_by,
        "resolved_at": t.resolved_at,
        "closed_by": t.closed_by,
        "closed_at": t.closed_at,
        "close_reason": t.close_reason,
        "history": [
            {"at": n.at.isoformat(), "by": n.by, "state": n.state.value, "text": n.text}
            for n in t.history
        ],
    }


def _ticket(r: Any) -> Ticket:
    return Ticket(
        id=r.id,
        device_id=r.device_id,
        state=TicketState(r.state),
        reason_code=r.reason_code,
        category=Category(r.category) if r.category else None,
        description=r.description,
        order_id=r.order_id,
        alarm_id=r.alarm_id,
        opened_at=r.opened_at,
        opened_by=r.opened_by,
        updated_at=r.updated_at,
        history=tuple(
            Note(datetime.fromisoformat(n["at"]), n["by"], TicketState(n["state"]), n["text"])
            for n in r.history or []
        ),
        root_cause_code=r.root_cause_code,
        corrective_action_code=r.corrective_action_code,
        resolution_note=r.resolution_note,
        resolved_by=r.resolved_by,
        resolved_at=r.resolved_at,
        closed_by=r.closed_by,
        closed_at=r.closed_at,
        close_reason=r.close_reason,
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

    async def partition_keys(self, device_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Each recorded device's partition key (all of them, or those of `device_ids`); a row
        written before keys were (none is, after migration 0007) falls back to its id."""
        stmt = select(devices.c.device_id, devices.c.partition_key)
        if device_ids is not None:
            ids = list(device_ids)
            if not ids:
                return {}
            stmt = stmt.where(devices.c.device_id.in_(ids))
        rows = await self.session.execute(stmt)
        return {r.device_id: r.partition_key or r.device_id for r in rows}

    async def register_devices(
        self,
        device_ids: Iterable[str],
        at: datetime,
        keys: Mapping[str, str] | None = None,
        *,
        verify: bool = False,
    ) -> dict[str, str]:
        """Records devices seen for the first time with their partition keys (`keys`, default
        each device's id; a device already recorded stays as it is). With `verify`, returns the
        devices that were recorded before under another key, with that key: another replica
        evaluates them (empty without `verify`)."""
        wanted = {d: (keys or {}).get(d, d) for d in device_ids}
        if not wanted:
            return {}
        rows = [
            {"device_id": d, "first_seen_at": at, "partition_key": k} for d, k in wanted.items()
        ]
        stmt = self._upsert(devices).on_conflict_do_nothing(index_elements=["device_id"])
        await self.session.execute(stmt, rows)
        if not verify:
            return {}
        stored = await self.partition_keys(wanted)
        return {d: stored[d] for d, k in wanted.items() if stored.get(d, k) != k}

    async def set_access_nodes(self, nodes: Mapping[str, str]) -> None:
        """Records the access node each device's telemetry names (written when it changes)."""
        for device_id, node_id in nodes.items():
            await self.session.execute(
                update(devices)
                .where(devices.c.device_id == device_id)
                .values(access_node_id=node_id or None)
            )

    async def access_nodes(self) -> dict[str, str]:
        """Each known device's access node, for those that have one."""
        rows = await self.session.execute(
            select(devices.c.device_id, devices.c.access_node_id).where(
                devices.c.access_node_id.is_not(None)
            )
        )
        return {r.device_id: r.access_node_id for r in rows}

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
        alarmed_object_type: str | None = None,
    ) -> None:
        await self.session.execute(
            insert(alarms).values(
                alarmed_object_type=alarmed_object_type,
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
        device_model: str | None = None,
        detail: str | None = None,
        samples: Sequence[Mapping[str, Any]] = (),
        onset_index: int | None = None,
        ticket_id: str | None = None,
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
                device_model=device_model,
                detail=detail,
                samples=[dict(x) for x in samples],
                onset_index=onset_index,
                actions=[],
                ticket_id=ticket_id,
            )
        )

    async def anomalies_of_device(self, device_id: str) -> list[AnomalyRecord]:
        rows = await self.session.execute(
            select(anomalies).where(anomalies.c.device_id == device_id).order_by(anomalies.c.id)
        )
        return [_anomaly(r) for r in rows]

    async def add_anomaly_samples(
        self, alarm_id: str, samples: Sequence[Mapping[str, Any]]
    ) -> None:
        """Appends the samples seen after onset to the anomaly's samples."""
        row = (
            await self.session.execute(
                select(anomalies.c.samples).where(anomalies.c.alarm_id == alarm_id)
            )
        ).first()
        if row is None:
            return
        await self.session.execute(
            update(anomalies)
            .where(anomalies.c.alarm_id == alarm_id)
            .values(samples=[*(row.samples or []), *(dict(x) for x in samples)])
        )

    async def end_anomaly(self, alarm_id: str, at: datetime) -> None:
        await self.session.execute(
            update(anomalies)
            .where(anomalies.c.alarm_id == alarm_id, anomalies.c.last_seen_at.is_(None))
            .values(last_seen_at=at)
        )

    async def add_anomaly_action(self, alarm_ids: Sequence[str], action: Mapping[str, Any]) -> None:
        """Records a first-line action on each of these alarms' anomaly records."""
        if not alarm_ids:
            return
        rows = await self.session.execute(
            select(anomalies.c.id, anomalies.c.actions).where(
                anomalies.c.alarm_id.in_(sorted(alarm_ids))
            )
        )
        for row in rows.all():
            await self.session.execute(
                update(anomalies)
                .where(anomalies.c.id == row.id)
                .values(actions=[*(row.actions or []), dict(action)])
            )

    async def anomaly_actions_of_alarms(
        self, alarm_ids: Sequence[str]
    ) -> dict[str, list[Mapping[str, Any]]]:
        if not alarm_ids:
            return {}
        rows = await self.session.execute(
            select(anomalies.c.alarm_id, anomalies.c.actions).where(
                anomalies.c.alarm_id.in_(sorted(alarm_ids))
            )
        )
        return {r.alarm_id: list(r.actions or []) for r in rows}

    async def link_anomalies(self, ticket_id: str, alarm_ids: Sequence[str]) -> None:
        """The anomalies of these alarms are handled under the ticket (a first one stands)."""
        if alarm_ids:
            await self.session.execute(
                update(anomalies)
                .where(anomalies.c.alarm_id.in_(sorted(alarm_ids)), anomalies.c.ticket_id.is_(None))
                .values(ticket_id=ticket_id)
            )

    async def anomalies_of_ticket(self, ticket_id: str) -> list[AnomalyRecord]:
        rows = await self.session.execute(
            select(anomalies).where(anomalies.c.ticket_id == ticket_id).order_by(anomalies.c.id)
        )
        return [_anomaly(r) for r in rows]

    async def close_anomalies(
        self,
        ticket_id: str,
        *,
        root_cause_code: str | None,
        corrective_action_code: str | None,
        note: str | None,
        at: datetime,
    ) -> None:
        """The ticket closed: its anomalies get the root cause and corrective action."""
        await self.session.execute(
            update(anomalies)
            .where(anomalies.c.ticket_id == ticket_id)
            .values(
                root_cause_code=root_cause_code,
                corrective_action_code=corrective_action_code,
                resolution_note=note,
                closed_at=at,
            )
        )

    async def list_anomalies(
        self, where: AnomalyFilter, *, before_id: str | None, limit: int
    ) -> list[AnomalyRecord]:
        """Newest first (ids are UUIDv7); keyset on the id."""
        stmt = select(anomalies).order_by(anomalies.c.id.desc()).limit(limit)
        if where.device_model:
            stmt = stmt.where(anomalies.c.device_model == where.device_model)
        if where.device_id:
            stmt = stmt.where(anomalies.c.device_id == where.device_id)
        if where.categories:
            stmt = stmt.where(anomalies.c.category.in_(sorted(c.value for c in where.categories)))
        if where.first_seen_from is not None:
            stmt = stmt.where(anomalies.c.first_seen_at >= where.first_seen_from)
        if where.first_seen_before is not None:
            stmt = stmt.where(anomalies.c.first_seen_at < where.first_seen_before)
        if before_id:
            stmt = stmt.where(anomalies.c.id < before_id)
        return [_anomaly(r) for r in await self.session.execute(stmt)]

    # --- tickets ---------------------------------------------------------------------------

    async def insert_ticket(self, ticket: Ticket) -> None:
        """A second open ticket of a device is a unique-key clash (Conflict at the unit of
        work): callers look for the open one first."""
        await self.session.execute(insert(tickets).values(_ticket_row(ticket)))

    async def update_ticket(self, ticket: Ticket) -> None:
        row = _ticket_row(ticket)
        del row["id"]
        await self.session.execute(update(tickets).where(tickets.c.id == ticket.id).values(row))

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        row = (await self.session.execute(select(tickets).where(tickets.c.id == ticket_id))).first()
        return await self._with_anomalies(_ticket(row)) if row is not None else None

    async def open_ticket_of(self, device_id: str) -> Ticket | None:
        row = (
            await self.session.execute(
                select(tickets).where(
                    tickets.c.device_id == device_id, tickets.c.state != TicketState.CLOSED.value
                )
            )
        ).first()
        return _ticket(row) if row is not None else None

    # --- device problems from follow-ups ----------------------------------------------------

    async def request_ticket(
        self, *, case_id: str, device_id: str, order_id: str, by: str, at: datetime
    ) -> bool:
        """Keeps a follow-up's device problem for the ticket desk of the replica evaluating the
        device; False when the case was requested before."""
        statement = (
            self._upsert(ticket_requests)
            .values(
                case_id=case_id,
                device_id=device_id,
                order_id=order_id,
                requested_by=by,
                requested_at=at,
            )
            .on_conflict_do_nothing(index_elements=["case_id"])
        )
        result = await self.session.execute(statement)
        return bool(result.rowcount)

    async def pending_ticket_requests(self, limit: int) -> list[TicketRequest]:
        rows = await self.session.execute(
            select(ticket_requests)
            .where(ticket_requests.c.ticket_id.is_(None))
            .order_by(ticket_requests.c.requested_at, ticket_requests.c.case_id)
            .limit(limit)
        )
        return [
            TicketRequest(r.case_id, r.device_id, r.order_id, r.requested_by, r.requested_at)
            for r in rows
        ]

    async def ticket_request_done(self, case_id: str, ticket_id: str) -> None:
        await self.session.execute(
            update(ticket_requests)
            .where(ticket_requests.c.case_id == case_id)
            .values(ticket_id=ticket_id)
        )

    async def open_tickets(self) -> list[Ticket]:
        rows = await self.session.execute(
            select(tickets).where(tickets.c.state != TicketState.CLOSED.value)
        )
        return [_ticket(r) for r in rows]

    async def list_tickets(
        self, where: TicketFilter, *, before_id: str | None, limit: int
    ) -> list[Ticket]:
        stmt = select(tickets).order_by(tickets.c.id.desc()).limit(limit)
        if where.device_id:
            stmt = stmt.where(tickets.c.device_id == where.device_id)
        if where.states:
            stmt = stmt.where(tickets.c.state.in_(sorted(where.states)))
        if before_id:
            stmt = stmt.where(tickets.c.id < before_id)
        return [await self._with_anomalies(_ticket(r)) for r in await self.session.execute(stmt)]

    async def _with_anomalies(self, ticket: Ticket) -> Ticket:
        rows = (
            await self.session.execute(
                select(anomalies.c.id, anomalies.c.actions)
                .where(anomalies.c.ticket_id == ticket.id)
                .order_by(anomalies.c.id)
            )
        ).all()
        actions: dict[tuple[str, str], Mapping[str, Any]] = {}
        for row in rows:
            for action in row.actions or []:
                actions.setdefault((action["action"], action["at"]), action)
        return replace(
            ticket,
            anomaly_ids=tuple(r.id for r in rows),
            actions_tried=tuple(actions[k] for k in sorted(actions, key=lambda k: k[1])),
        )

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
