"""Telemetry ingest: evaluate each reading in memory; persist and publish only the changes.

Readings go through the alarm evaluator (``domain/evaluator.py``) with the rules loaded at
start; its transitions are written to ``device_transitions`` and an alarm is opened or closed
when the set of abnormal categories moves. A clock tick (``tick``) finds devices whose
heartbeat is lost.

A batch is evaluated against the health book under one lock (evaluation is CPU only, so the
lock is held for microseconds unless the batch changed something). When it did, every change
of the batch (devices seen for the first time, alarms raised with their anomaly records, alarms
cleared, and their events in the outbox) is written in ONE transaction, and the book is updated
only after that transaction commits: a failed write leaves the book as it was, so the next
reading finds the same change again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app import events, site
from orderline_device_monitor.app.book import HealthBook, restore_from_database
from orderline_device_monitor.app.partitions import partition_key, partition_moved
from orderline_device_monitor.app.tickets import open_ticket_in
from orderline_device_monitor.domain import devices, work
from orderline_device_monitor.domain.alarms import is_root, probable_cause
from orderline_device_monitor.domain.escalation import OpenTicket, ticket_description
from orderline_device_monitor.domain.evaluator import Kind
from orderline_device_monitor.domain.health import (
    Category,
    DeviceState,
    HealthChange,
    Reading,
    reading_problems,
    reading_usable,
)
from orderline_device_monitor.domain.rules import DEFAULT_MODEL, RuleSet
from orderline_device_monitor.domain.tickets import SAFETY_FAILURE, SYSTEM, Ticket
from orderline_runtime.clock import Clock
from orderline_runtime.errors import Conflict, Unavailable
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.telemetry import order_scope, tracer
from orderline_runtime.telemetry_names import DEVICE_ID, HEALTH_CHANGE_SPAN
from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


# Samples kept around an anomaly's onset: up to this many before it (the onset sample included),
# and this many after it. Held in memory; the ones after onset are written once, when they are
# all in or when the alarm clears first.
SAMPLES_BEFORE = 5
SAMPLES_AFTER = 5


def sample_json(reading: Reading) -> dict[str, Any]:
    """A reading as an anomaly record keeps it."""
    return {
        "device_id": reading.device_id,
        "observed_at": reading.observed_at.isoformat() if reading.observed_at else None,
        **reading.values(),
    }


@dataclass
class _Capture:
    """Samples after an anomaly's onset, gathered in memory until written."""

    alarm_id: str
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Onset:
    """What the ingest knew when it raised an alarm: the samples up to it, the device model."""

    samples: tuple[dict[str, Any], ...]
    model: str


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: int
    changes: int


class TelemetryIngest:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        clock: Clock,
        rules: RuleSet,
        *,
        new_alarm_id: Callable[[], str] = new_id,
        model_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.uow = uow
        self.book = book
        self.clock = clock
        self.rules = rules
        self.new_alarm_id = new_alarm_id
        # A device's model when its telemetry does not name it (the rules' default model when
        # nothing does); None: nothing else knows it.
        self.model_of = model_of
        self._lock = asyncio.Lock()
        # Per device, the last few readings (for the samples before an anomaly's onset).
        self._recent: dict[str, deque[Reading]] = {}
        # Per device, the anomalies still gathering samples after their onset.
        self._after: dict[str, list[_Capture]] = {}
        # Device and access-node ids already found acceptable (``health.reading_usable``).
        self._valid_ids: set[str] = set()

    async def ingest(
        self, readings: Sequence[Reading], partitions: frozenset[int] | None = None
    ) -> IngestResult:
        """Evaluates a batch. Unusable readings (bad device id, non-finite values) are skipped
        and counted, so one broken device does not stop the fleet's telemetry. `partitions`:
        those of the batch's devices, as routed (api/routing.py); UNAVAILABLE when this replica
        no longer evaluates one of them (the sender retries and reaches the new owner)."""
        usable: list[Reading] = []
        valid_ids = self._valid_ids
        for index, reading in enumerate(readings):
            if reading_usable(reading, valid_ids):
                usable.append(reading)
                continue
            log.warning(
                "telemetry sample rejected",
                index=index,
                device_id=reading.device_id[:64],
                problems=[f"{name}: {text}" for name, text in reading_problems(reading)],
            )
        await self.book.wait_ready()
        async with self._lock:
            if partitions is not None and not partitions <= self.book.partitions.owned:
                raise partition_moved()
            changes = await self._evaluate(usable)
        return IngestResult(
            accepted=len(usable), rejected=len(readings) - len(usable), changes=changes
        )

    async def _evaluate(self, readings: Sequence[Reading]) -> int:
        now = self.clock()
        states: dict[str, DeviceState] = {}
        first_seen: list[str] = []
        # The partition key each new device is recorded with (app/partitions.py).
        first_keys: dict[str, str] = {}
        partitions = self.book.partitions
        changes: list[HealthChange] = []
        onsets: dict[str, _Onset] = {}
        flushes: list[_Capture] = []
        nodes = self.book.site
        # Devices whose telemetry names an access node the book does not have for them yet.
        placed: dict[str, str] = {}
        # Looked up once per batch, not per reading.
        rules, model_of, book_get, node_of = (
            self.rules,
            self.model_of,
            self.book.lookup(),
            nodes.node_of,
        )
        recents, observe_quiet = self._recent, devices.quiet_observer(rules, now)
        for reading in readings:
            device_id = reading.device_id
            previous = states.get(device_id) or book_get(device_id)
            if previous is None:
                first_seen.append(device_id)
                first_keys[device_id] = partitions.key_of(device_id) or partition_key(
                    device_id, reading.access_node
                )
            if reading.access_node and node_of.get(device_id) != reading.access_node:
                placed[device_id] = reading.access_node
            recent = recents.get(device_id)
            if recent is None:
                recent = recents[device_id] = deque(maxlen=SAMPLES_BEFORE)
            recent.append(reading)
            if self._after:
                flushes.extend(self._gather_after(reading))
            # The model the sample names; else whatever the device was known to be.
            model = reading.model or (model_of(device_id) if model_of is not None else None)
            # A healthy reading of a healthy device: its next state, no change (most readings).
            quiet = observe_quiet(previous, reading, model)
            if quiet is not None:
                states[device_id] = quiet
                continue
            seen = devices.observe(
                previous,
                reading,
                received_at=now,
                new_alarm_id=self.new_alarm_id,
                rules=rules,
                model=model,
            )
            if seen.out_of_order:
                log.debug("out-of-order telemetry sample ignored", device_id=reading.device_id)
            states[reading.device_id] = seen.state
            if seen.change is not None:
                changes.append(seen.change)
                if seen.change.raised:
                    evaluation = seen.state.evaluation
                    onset = _Onset(
                        tuple(sample_json(r) for r in recent),
                        (evaluation.model if evaluation else None) or DEFAULT_MODEL,
                    )
                    captures = self._after.setdefault(reading.device_id, [])
                    for raised in seen.change.raised:
                        onsets[raised.alarm_id] = onset
                        captures.append(_Capture(raised.alarm_id))
                for cleared in seen.change.cleared:
                    flushes.extend(self._stop_gathering(reading.device_id, cleared.alarm.alarm_id))
        site_plan = site.SitePlan()
        before = {d: nodes.node_of.get(d) for d in placed}
        for device_id, node_id in placed.items():
            nodes.place(device_id, node_id)
        if changes:
            touched = {nodes.node_of[c.device_id] for c in changes if c.device_id in nodes.node_of}
            if not partitions.all_owned:
                # A node is assessed by the replica evaluating its partition only (a device
                # recorded under its own id before it named its node is not counted there).
                touched = {n for n in touched if partitions.owns_key(n)}
            site_plan = site.plan(
                nodes,
                touched,
                states,
                self.book.get,
                self.rules.site,
                new_alarm_id=self.new_alarm_id,
                now=max(c.at for c in changes),
            )
        if first_seen or changes or flushes or placed:
            try:
                maintenance = await self._persist(
                    first_seen,
                    changes,
                    now,
                    keys=first_keys,
                    onsets=onsets,
                    flushes=flushes,
                    states=states,
                    placed=placed,
                    site_plan=site_plan,
                )
                site.commit(nodes, site_plan)
                # Kept even while every partition is here: when another replica joins, this one
                # drops the devices of the partitions it gives back by these keys.
                partitions.learn(first_keys)
                for device_id, ticket in maintenance.items():
                    self.book.tickets[device_id] = ticket
                    states[device_id] = replace(states[device_id], under_maintenance=True)
            except BaseException as exc:
                for device_id, old_node in before.items():
                    if old_node is None:
                        nodes.members.get(placed[device_id], set()).discard(device_id)
                        nodes.node_of.pop(device_id, None)
                    else:
                        nodes.place(device_id, old_node)
                if not isinstance(exc, Conflict):
                    raise
                # Another writer (a second replica) opened an alarm this book did not know of:
                # take the database's view and let the sender retry against it.
                log.warning("open alarms changed under us; restoring from the database")
                await restore_from_database(self.uow, self.book)
                raise Unavailable(
                    "device health changed concurrently; resend the batch",
                    reason="HEALTH_STATE_CONFLICT",
                ) from exc
        self.book.put_by_id(states)
        return len(changes)

    def _gather_after(self, reading: Reading) -> list[_Capture]:
        """Adds the reading to its device's anomalies gathering samples after onset; those now
        complete are returned to be written."""
        captures = self._after.get(reading.device_id)
        if not captures:
            return []
        complete: list[_Capture] = []
        for capture in captures:
            capture.samples.append(sample_json(reading))
            if len(capture.samples) >= SAMPLES_AFTER:
                complete.append(capture)
        if complete:
            remaining = [c for c in captures if c not in complete]
            if remaining:
                self._after[reading.device_id] = remaining
            else:
                del self._after[reading.device_id]
        return complete

    def _stop_gathering(self, device_id: str, alarm_id: str) -> list[_Capture]:
        """The alarm cleared: what was gathered after its onset is written now."""
        captures = self._after.get(device_id, [])
        stopped = [c for c in captures if c.alarm_id == alarm_id]
        if stopped:
            remaining = [c for c in captures if c.alarm_id != alarm_id]
            if remaining:
                self._after[device_id] = remaining
            else:
                self._after.pop(device_id, None)
        return [c for c in stopped if c.samples]

    def forget(self, device_ids: Iterable[str] | None = None) -> None:
        """Drops the samples kept around anomalies' onsets: of these devices (their partition
        moved to another replica), or of all."""
        if device_ids is None:
            self._recent = {}
            self._after = {}
            return
        for device_id in device_ids:
            self._recent.pop(device_id, None)
            self._after.pop(device_id, None)

    @property
    def lock(self) -> asyncio.Lock:
        """Held while the book is evaluated and written; a person's clear takes it too."""
        return self._lock

    async def tick(self) -> int:
        """Heartbeat check on the injected clock: tells and records each device whose
        communication is lost, with its communication alarm; returns how many."""
        if not self.book.ready.is_set():
            # Nothing to check before the book is restored (and no error to log every second).
            return 0
        async with self._lock:
            now = self.clock()
            states: list[DeviceState] = []
            changes: list[HealthChange] = []
            for state in self.book.states():
                after, change = devices.heartbeat(
                    state, now, self.rules, new_alarm_id=self.new_alarm_id
                )
                if change is not None:
                    states.append(after)
                    changes.append(change)
            if changes:
                await self._persist((), changes, now, states={s.device_id: s for s in states})
                for change in changes:
                    for transition in change.transitions:
                        if transition.kind is Kind.COMMUNICATION_LOST:
                            log.warning(
                                "device communication lost",
                                device_id=transition.device_id,
                                last_sample_at=str(transition.sample_at),
                            )
                self.book.put_all(states)
        return sum(len(c.transitions) for c in changes)

    async def _persist(
        self,
        first_seen: Sequence[str],
        changes: Sequence[HealthChange],
        now: datetime,
        *,
        states: Mapping[str, DeviceState],
        onsets: Mapping[str, _Onset] | None = None,
        flushes: Sequence[_Capture] = (),
        placed: Mapping[str, str] | None = None,
        site_plan: site.SitePlan | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> dict[str, Ticket]:
        """Writes the batch's changes in one transaction; returns the tickets it opened (a
        safety failure's), by device, for the book once it commits."""
        stream_span = trace.get_current_span().get_span_context()
        opened: dict[str, Ticket] = {}
        async with self.uow() as uow:
            if first_seen:
                elsewhere = await uow.repos.register_devices(
                    first_seen, now, keys, verify=not self.book.partitions.all_owned
                )
                if elsewhere:
                    # Recorded meanwhile by another replica under another key (its first samples
                    # disagreed about its access node): that replica evaluates it.
                    raise Conflict(f"devices recorded under another partition: {sorted(elsewhere)}")
            if placed:
                await uow.repos.set_access_nodes(placed)
            for capture in flushes:
                await uow.repos.add_anomaly_samples(capture.alarm_id, capture.samples)
            for change in changes:
                # Each change is its own small trace (not a child of a long telemetry stream),
                # linked to the stream that carried it, and part of the device's order if any.
                with tracer().start_as_current_span(
                    HEALTH_CHANGE_SPAN,
                    context=otel_context.Context(),
                    links=[trace.Link(stream_span)] if stream_span.is_valid else None,
                    attributes={DEVICE_ID: change.device_id},
                ):
                    ticket = await self._record(
                        uow, change, now, states[change.device_id], onsets or {}
                    )
                    if ticket is not None:
                        opened[change.device_id] = ticket
            if site_plan:
                # After the devices' own changes: a line alarm raised in this batch exists
                # before it is put under its access node's alarm.
                await site.persist(uow, site_plan, rules_version=self.rules.version, now=now)
        return opened

    async def _record(
        self,
        uow: UnitOfWork[DeviceRepository],
        change: HealthChange,
        now: datetime,
        state: DeviceState,
        onsets: Mapping[str, _Onset],
    ) -> Ticket | None:
        device_id = change.device_id
        evaluation = state.evaluation
        # As the events say it: empty while no sample has named it.
        model = (evaluation.model if evaluation else None) or ""
        usage = await uow.repos.usage_of(device_id)
        order_id = usage.order_id if usage else ""
        ticket_id: str | None = None
        if change.raised and state.under_maintenance:
            # Anomalies of a device under maintenance are handled under its open ticket.
            current = self.book.tickets.get(device_id)
            ticket_id = current.id if current else None
        with order_scope(order_id, device_id) if order_id else nullcontext():
            for raised in change.raised:
                finding = raised.finding
                await uow.repos.raise_alarm(
                    alarm_id=raised.alarm_id,
                    device_id=device_id,
                    category=finding.category,
                    detail=finding.detail,
                    raised_at=change.at,
                    order_id=order_id or None,
                    severity=finding.severity,
                    rules_version=self.rules.version,
                    probable_cause=probable_cause(finding.category),
                    is_root_cause=is_root(finding.category),
                    parent_alarm_id=raised.parent_id,
                )
                onset = onsets.get(raised.alarm_id)
                samples = onset.samples if onset else ()
                await uow.repos.record_anomaly(
                    anomaly_id=new_id(),
                    alarm_id=raised.alarm_id,
                    device_id=device_id,
                    category=finding.category,
                    readings=finding.readings,
                    snapshot=change.reading.values() if change.reading else {},
                    first_seen_at=change.at,
                    order_id=order_id or None,
                    job_id=usage.job_id if usage else None,
                    recorded_at=now,
                    device_model=onset.model if onset else DEFAULT_MODEL,
                    detail=finding.detail,
                    samples=samples,
                    onset_index=len(samples) - 1 if samples else None,
                    ticket_id=ticket_id,
                )
                uow.emit(events.alarm_raised(device_id, raised, model), order_id=order_id)
                log.info(
                    "alarm raised",
                    device_id=device_id,
                    alarm_id=raised.alarm_id,
                    category=finding.category.value,
                    severity=finding.severity.label,
                    detail=finding.detail,
                    order_id=order_id,
                    rules_version=self.rules.version,
                )
            for cleared in change.cleared:
                await uow.repos.clear_alarm(cleared.alarm.alarm_id, change.at)
                await uow.repos.end_anomaly(cleared.alarm.alarm_id, change.at)
                uow.emit(events.alarm_cleared(device_id, cleared), order_id=order_id)
                log.info(
                    "alarm cleared",
                    device_id=device_id,
                    alarm_id=cleared.alarm.alarm_id,
                    category=cleared.category.value,
                )
            await record_updates(uow, change, now, order_id)
            await uow.repos.record_transitions(change.transitions, new_id)
            if change.health_changed:
                await uow.repos.mark_device_changed(device_id, change.at)
                uow.emit(
                    events.health_changed(device_id, change.abnormal_after, change.condition),
                    order_id=order_id,
                )
            self._tell_turn(uow, change, state, order_id, model)
            safety = next((r for r in change.raised if r.finding.category is Category.SAFETY), None)
            if safety is None or state.under_maintenance or device_id in self.book.tickets:
                return None
            # A safety failure: a ticket at once, in the transaction that raised the alarm;
            # nothing is tried on the device (domain/escalation.py).
            decision = OpenTicket(SAFETY_FAILURE, Category.SAFETY, safety.alarm_id)
            opened = await open_ticket_in(
                uow,
                state,
                rules_version=self.rules.version,
                reason_code=SAFETY_FAILURE,
                category=Category.SAFETY,
                alarm_id=safety.alarm_id,
                description=ticket_description(decision, (), 0),
                order_id=order_id or None,
                by=SYSTEM,
                at=change.at,
            )
            return await uow.repos.get_ticket(opened.id)

    def _tell_turn(
        self,
        uow: UnitOfWork[DeviceRepository],
        change: HealthChange,
        state: DeviceState,
        order_id: str,
        model: str,
    ) -> None:
        """device.abnormal when the change stops work on the device, device.recovered when it
        lets work go on again (domain/work.py); nothing while under maintenance (only its end
        moves the device) or when the change does not turn it."""
        if change.abnormal_before is None:
            return
        maintenance = state.under_maintenance
        turned = work.turn(
            blocked_before=work.blocks_work(change.abnormal_before, under_maintenance=maintenance),
            blocked_after=work.blocks_work(change.abnormal_after, under_maintenance=maintenance),
        )
        if turned is work.Turn.ABNORMAL:
            blocking = work.blocking_alarms(change.open_after)
            uow.emit(
                events.device_abnormal(
                    change.device_id,
                    blocking,
                    at=change.at,
                    rules_version=self.rules.version,
                    condition=change.condition,
                    device_model=model,
                ),
                order_id=order_id,
            )
            log.info(
                "device abnormal: work stops",
                device_id=change.device_id,
                alarms=[a.alarm_id for a in blocking],
                rules_version=self.rules.version,
            )
        elif turned is work.Turn.RECOVERED:
            cleared = [
                c.alarm.alarm_id for c in change.cleared if c.category is not Category.COMMUNICATION
            ]
            uow.emit(
                events.device_recovered(
                    change.device_id,
                    cleared,
                    at=change.at,
                    rules_version=self.rules.version,
                    condition=change.condition,
                ),
                order_id=order_id,
            )
            log.info("device recovered: work may go on", device_id=change.device_id)


async def record_updates(
    uow: UnitOfWork[DeviceRepository], change: HealthChange, now: datetime, order_id: str
) -> None:
    """Open alarms that changed without opening or closing: re-graded, repeated, correlated
    under a root or released from one; each an alarm row update and a device.alarm_updated."""
    device_id = change.device_id
    for alarm, severity in change.severity_changes:
        await uow.repos.grade_alarm(alarm.alarm_id, severity, now)
        category = next(
            (c for c, a in change.open_after.items() if a.alarm_id == alarm.alarm_id), None
        )
        if category is not None:
            graded = replace(change.open_after[category], severity=severity)
            uow.emit(
                events.alarm_updated(device_id, category, graded, events.SEVERITY_CHANGED),
                order_id=order_id,
            )
    for category, alarm in change.repeated:
        await uow.repos.repeat_alarm(alarm.alarm_id, alarm.repeat_count, now)
        uow.emit(
            events.alarm_updated(device_id, category, alarm, events.REPEATED), order_id=order_id
        )
    for moved in change.correlated:
        await uow.repos.correlate_alarm(moved.alarm.alarm_id, moved.parent_id, now)
        kind = events.CORRELATED if moved.parent_id else events.RELEASED
        uow.emit(
            events.alarm_updated(device_id, moved.category, moved.alarm, kind), order_id=order_id
        )
