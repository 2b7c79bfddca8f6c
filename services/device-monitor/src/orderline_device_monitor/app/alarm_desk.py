"""What a person does to an alarm: acknowledge it, or clear it with a reason.

A clear changes the in-memory book as the evaluator's decisions do (under the ingest lock, the
book updated only after the transaction commits). A fault still present is raised again, as a
new alarm, by its next sample: a person's clear says "handled", not "the fault is gone".
"""

from __future__ import annotations

from dataclasses import replace

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app import events, site
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.ingest import TelemetryIngest
from orderline_device_monitor.app.partitions import partition_moved
from orderline_device_monitor.app.records import AlarmRecord
from orderline_device_monitor.domain import work
from orderline_device_monitor.domain.alarms import (
    AlarmNotOpen,
    AlarmStatus,
    check_acknowledge,
    check_clear,
    recorrelate,
)
from orderline_device_monitor.domain.condition import Condition
from orderline_device_monitor.domain.evaluator import align
from orderline_device_monitor.domain.health import (
    Category,
    ClearedAlarm,
    DeviceState,
    OpenAlarm,
    Severity,
)
from orderline_runtime.clock import Clock
from orderline_runtime.errors import FailedPrecondition, NotFound, PreconditionViolation
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


def _status(record: AlarmRecord) -> AlarmStatus:
    return AlarmStatus(record.id, record.is_open, record.acknowledged_by)


def _not_open(record: AlarmRecord, exc: AlarmNotOpen) -> FailedPrecondition:
    return FailedPrecondition(
        str(exc),
        reason="ALARM_CLEARED",
        violations=[PreconditionViolation("STATE", f"alarm/{record.id}", str(exc))],
    )


async def _get(uow: UnitOfWork[DeviceRepository], alarm_id: str) -> AlarmRecord:
    record = await uow.repos.get_alarm(alarm_id)
    if record is None:
        raise NotFound("alarm", alarm_id)
    return record


class AlarmDesk:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        ingest: TelemetryIngest,
        clock: Clock,
    ) -> None:
        self.uow = uow
        self.book = book
        self.ingest = ingest
        self.clock = clock

    async def acknowledge(self, alarm_id: str, by: str) -> AlarmRecord:
        """NOT_FOUND for an unknown alarm, FAILED_PRECONDITION for a cleared one; a second
        acknowledgement changes nothing and answers the alarm as the first left it."""
        async with self.uow() as uow:
            record = await _get(uow, alarm_id)
            try:
                changes = check_acknowledge(_status(record))
            except AlarmNotOpen as exc:
                raise _not_open(record, exc) from None
            if changes and await uow.repos.acknowledge_alarm(alarm_id, by, self.clock()):
                record = await _get(uow, alarm_id)
                uow.emit(events.alarm_acknowledged(record), order_id=record.order_id or "")
                log.info("alarm acknowledged", alarm_id=alarm_id, by=by)
        return record

    async def clear(self, alarm_id: str, by: str, reason: str) -> AlarmRecord:
        """Closes an open alarm by hand; a root's children still open are released."""
        await self.book.wait_ready()
        async with self.ingest.lock:
            now = self.clock()
            async with self.uow() as uow:
                record = await _get(uow, alarm_id)
                try:
                    check_clear(_status(record))
                except AlarmNotOpen as exc:
                    raise _not_open(record, exc) from None
                partitions = self.book.partitions
                if record.is_access_node:
                    if not partitions.owns_key(record.device_id):
                        raise partition_moved()
                else:
                    await partitions.check_owned(self.uow, record.device_id)
                await uow.repos.clear_alarm(alarm_id, now, cleared_by=by, reason=reason)
                order_id = record.order_id or ""
                state = self.book.get(record.device_id)
                cleared = OpenAlarm(record.id, record.raised_at, record.severity or Severity.MAJOR)
                uow.emit(
                    events.alarm_cleared(
                        record.device_id,
                        ClearedAlarm(record.category, cleared),
                        cleared_by=by,
                        reason=reason,
                    ),
                    order_id=order_id,
                )
                after = None
                released: dict[str, DeviceState] = {}
                if record.is_access_node:
                    # An access node's alarm: its devices' line alarms stand on their own again.
                    plan = site.release_all(self.book.site, record.id, released, self.book.get)
                    await site.persist(uow, plan, rules_version=self.ingest.rules.version, now=now)
                if state is not None and not record.is_access_node:
                    remaining = {
                        c: a for c, a in state.open_alarms.items() if a.alarm_id != alarm_id
                    }
                    remaining, moved = recorrelate(remaining)
                    for m in moved:
                        await uow.repos.correlate_alarm(m.alarm.alarm_id, m.parent_id, now)
                        kind = events.CORRELATED if m.parent_id else events.RELEASED
                        uow.emit(
                            events.alarm_updated(record.device_id, m.category, m.alarm, kind),
                            order_id=order_id,
                        )
                    # The evaluator agrees with the alarms again: the cleared category starts
                    # from OK, so a fault still there goes through its rule (pending) anew.
                    evaluation = align(
                        state.evaluation,
                        record.device_id,
                        {c: a.severity for c, a in remaining.items()},
                    )
                    after = replace(state, open_alarms=remaining, evaluation=evaluation)
                    if record.category is not Category.COMMUNICATION:
                        await uow.repos.mark_device_changed(record.device_id, now)
                        uow.emit(
                            events.health_changed(record.device_id, after.abnormal),
                            order_id=order_id,
                        )
                    maintenance = state.under_maintenance
                    if (
                        work.turn(
                            blocked_before=work.blocks_work(
                                state.abnormal, under_maintenance=maintenance
                            ),
                            blocked_after=work.blocks_work(
                                after.abnormal, under_maintenance=maintenance
                            ),
                        )
                        is work.Turn.RECOVERED
                    ):
                        # A person's clear took the last alarm that stopped work.
                        uow.emit(
                            events.device_recovered(
                                record.device_id,
                                [alarm_id],
                                at=now,
                                rules_version=self.ingest.rules.version,
                                condition=Condition.HEALTHY,
                            ),
                            order_id=order_id,
                        )
                record = await _get(uow, alarm_id)
            if after is not None:
                self.book.put_all([after])
            if record.is_access_node:
                self.book.put_all(released.values())
                if self.book.site.alarms.get(record.device_id) is not None and (
                    self.book.site.alarms[record.device_id].alarm_id == record.id
                ):
                    del self.book.site.alarms[record.device_id]
        log.info("alarm cleared by hand", alarm_id=alarm_id, by=by, reason=reason)
        return record
