# Texts for people carry zh-CN punctuation on purpose.
"""Maintenance tickets: opened by escalation or a report, moved on by people, closed by a
person's confirmation or by telemetry confirming the device healthy.

Opening and closing a ticket move the device into and out of maintenance, so they run under
the ingest lock and change the in-memory book only after their transaction commits (as the
evaluator's decisions do). Progress and resolve touch the database and the book's copy of the
ticket only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app import events
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.partitions import partition_moved
from orderline_device_monitor.app.records import AnomalyFilter, AnomalyRecord, TicketFilter
from orderline_device_monitor.domain import condition, tickets, work
from orderline_device_monitor.domain.devices import health_of
from orderline_device_monitor.domain.health import Category, DeviceState, HealthState
from orderline_device_monitor.domain.rules import RuleSet
from orderline_device_monitor.domain.tickets import IllegalTicketStep, Ticket
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
)
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_before_id: str | None


def _illegal(exc: IllegalTicketStep) -> FailedPrecondition:
    return FailedPrecondition(
        str(exc),
        reason="TICKET_STATE",
        violations=[PreconditionViolation("STATE", f"ticket/{exc.ticket.id}", str(exc))],
    )


async def open_ticket_in(
    uow: UnitOfWork[DeviceRepository],
    state: DeviceState,
    *,
    rules_version: str = "",
    reason_code: str,
    category: Category | None,
    alarm_id: str | None,
    description: str,
    order_id: str | None,
    by: str,
    at: datetime,
) -> Ticket:
    """Writes a new ticket for a device with none open, links the anomalies of its open alarms,
    and tells it (ticket opened; the device's condition now under maintenance). The caller puts
    the device under maintenance in the book once this commits."""
    ticket = tickets.open_ticket(
        ticket_id=new_id(),
        device_id=state.device_id,
        reason_code=reason_code,
        category=category,
        description=description,
        order_id=order_id,
        alarm_id=alarm_id,
        by=by,
        at=at,
    )
    await uow.repos.insert_ticket(ticket)
    await uow.repos.link_anomalies(ticket.id, [a.alarm_id for a in state.open_alarms.values()])
    await uow.repos.mark_device_changed(state.device_id, at)
    uow.emit(events.ticket_opened(ticket), order_id=order_id or "")
    uow.emit(
        events.health_changed(
            state.device_id, state.abnormal, condition.Condition.UNDER_MAINTENANCE
        ),
        order_id=order_id or "",
    )
    if not work.blocks_work(state.abnormal, under_maintenance=state.under_maintenance):
        # A fit device goes under maintenance: work on it stops now.
        uow.emit(
            events.device_abnormal(
                state.device_id,
                work.blocking_alarms(state.open_alarms),
                at=at,
                rules_version=rules_version,
                condition=condition.Condition.UNDER_MAINTENANCE,
                ticket_id=ticket.id,
                device_model=(state.evaluation.model if state.evaluation else None) or "",
            ),
            order_id=order_id or "",
        )
    log.info(
        "maintenance ticket opened",
        ticket_id=ticket.id,
        device_id=state.device_id,
        reason=reason_code,
        category=category.value if category else None,
        by=by,
    )
    return ticket


class TicketDesk:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        lock: asyncio.Lock,
        clock: Clock,
        rules: RuleSet,
    ) -> None:
        self.uow = uow
        self.book = book
        self.lock = lock
        self.clock = clock
        self.rules = rules
        # When each device's last ticket closed: a new episode starts no earlier (so a device a
        # person confirmed is not escalated again at once for alarms older than the ticket).
        self.closed_at: dict[str, datetime] = {}

    # --- reading ---------------------------------------------------------------------------

    async def get(self, ticket_id: str) -> Ticket:
        async with self.uow(read_only=True) as uow:
            ticket = await uow.repos.get_ticket(ticket_id)
        if ticket is None:
            raise NotFound("ticket", ticket_id)
        return ticket

    async def list(self, where: TicketFilter, *, before_id: str | None, limit: int) -> Page[Ticket]:
        async with self.uow(read_only=True) as uow:
            rows = await uow.repos.list_tickets(where, before_id=before_id, limit=limit + 1)
        page = rows[:limit]
        return Page(page, page[-1].id if len(rows) > limit and page else None)

    async def anomalies(
        self, where: AnomalyFilter, *, before_id: str | None, limit: int
    ) -> Page[AnomalyRecord]:
        async with self.uow(read_only=True) as uow:
            rows = await uow.repos.list_anomalies(where, before_id=before_id, limit=limit + 1)
        page = rows[:limit]
        return Page(page, page[-1].id if len(rows) > limit and page else None)

    # --- opening ---------------------------------------------------------------------------

    async def create(
        self,
        *,
        device_id: str,
        description: str,
        category: Category | None,
        order_id: str | None,
        by: str,
        case_id: str | None = None,
    ) -> tuple[Ticket, bool]:
        """A reported problem: a new ticket, or, when the device has one open, the report added
        to it (created False). With `case_id`, a follow-up's request, marked taken in the same
        transaction (app/ticket_requests.py)."""
        await self.book.wait_ready()
        async with self.lock:
            await self.book.partitions.check_owned(self.uow, device_id)
            now = self.clock()
            async with self.uow() as uow:
                existing = await uow.repos.open_ticket_of(device_id)
                if existing is not None:
                    ticket = tickets.add_report(existing, by=by, at=now, text=description)
                    await uow.repos.update_ticket(ticket)
                    created = False
                else:
                    state = self.book.get(device_id)
                    if state is None:
                        # Never heard from: recorded now under its own id, so that its telemetry
                        # reaches this replica's partition too (app/partitions.py).
                        partitions = self.book.partitions
                        elsewhere = await uow.repos.register_devices(
                            [device_id], now, verify=not partitions.all_owned
                        )
                        if elsewhere:
                            partitions.learn(elsewhere)
                            raise partition_moved()
                        partitions.learn({device_id: device_id})
                        state = DeviceState(device_id)
                    ticket = await open_ticket_in(
                        uow,
                        state,
                        rules_version=self.rules.version,
                        reason_code=tickets.REPORTED,
                        category=category,
                        alarm_id=None,
                        description=description,
                        order_id=order_id,
                        by=by,
                        at=now,
                    )
                    created = True
                if case_id is not None:
                    await uow.repos.ticket_request_done(case_id, ticket.id)
                full = await uow.repos.get_ticket(ticket.id)
            assert full is not None
            self.enter_maintenance(full)
        return full, created

    def enter_maintenance(self, ticket: Ticket) -> None:
        """After the opening commits: the device is under maintenance in the book."""
        self.book.tickets[ticket.device_id] = ticket
        state = self.book.get(ticket.device_id) or DeviceState(ticket.device_id)
        self.book.put_all([replace(state, under_maintenance=True)])

    # --- moving on -------------------------------------------------------------------------

    async def progress(self, ticket_id: str, *, by: str, note: str) -> Ticket:
        async with self.uow() as uow:
            ticket = await self._get(uow, ticket_id)
            await self.book.partitions.check_owned(self.uow, ticket.device_id)
            try:
                after = tickets.progress(ticket, by=by, at=self.clock(), note=note)
            except IllegalTicketStep as exc:
                raise _illegal(exc) from None
            await uow.repos.update_ticket(after)
            uow.emit(events.ticket_progressed(after, by), order_id=after.order_id or "")
        self._remember(after)
        log.info("ticket in progress", ticket_id=ticket_id, by=by)
        return after

    async def resolve(
        self,
        ticket_id: str,
        *,
        by: str,
        root_cause_code: str,
        corrective_action_code: str,
        note: str,
    ) -> Ticket:
        async with self.uow() as uow:
            ticket = await self._get(uow, ticket_id)
            await self.book.partitions.check_owned(self.uow, ticket.device_id)
            try:
                after = tickets.resolve(
                    ticket,
                    by=by,
                    at=self.clock(),
                    root_cause_code=root_cause_code,
                    corrective_action_code=corrective_action_code,
                    note=note,
                )
            except IllegalTicketStep as exc:
                raise _illegal(exc) from None
            await uow.repos.update_ticket(after)
            uow.emit(events.ticket_resolved(after), order_id=after.order_id or "")
        self._remember(after)
        log.info(
            "ticket resolved",
            ticket_id=ticket_id,
            by=by,
            root_cause=root_cause_code,
            corrective_action=corrective_action_code,
        )
        return after

    async def close(self, ticket_id: str, *, by: str, note: str) -> Ticket:
        """A person confirms the device works: resolved → closed (FAILED_PRECONDITION from any
        other state)."""
        await self.book.wait_ready()
        async with self.lock:
            async with self.uow() as uow:
                ticket = await self._get(uow, ticket_id)
                await self.book.partitions.check_owned(self.uow, ticket.device_id)
                try:
                    after = tickets.close(
                        ticket, by=by, at=self.clock(), confirmed_by_person=True, note=note
                    )
                except IllegalTicketStep as exc:
                    raise _illegal(exc) from None
                except tickets.SameResolver as exc:
                    raise PermissionDenied(str(exc), reason="FOUR_EYES") from None
                await self._closed(uow, after)
            self._leave_maintenance(after)
        return after

    async def close_if_confirmed(self, device_id: str) -> Ticket | None:
        """Closes the device's resolved ticket when telemetry since the resolution confirms the
        device healthy (nothing failing, no alarm open, heard from); None otherwise."""
        async with self.lock:
            ticket = self.book.tickets.get(device_id)
            state = self.book.get(device_id)
            if ticket is None or state is None or ticket.state is not tickets.TicketState.RESOLVED:
                return None
            now = self.clock()
            view = health_of(state, now=now, rules=self.rules)
            if not tickets.confirmed_healthy(
                ticket,
                last_seen=state.last_seen,
                healthy=view.state is HealthState.GOOD and not view.failing,
                abnormal=bool(state.open_alarms),
            ):
                return None
            async with self.uow() as uow:
                current = await self._get(uow, ticket.id)
                after = tickets.close(
                    current,
                    by=tickets.SYSTEM,
                    at=now,
                    confirmed_by_person=False,
                    device_healthy=True,
                    note=tickets.DEVICE_CONFIRMED_HEALTHY,
                )
                await self._closed(uow, after)
            self._leave_maintenance(after)
        return after

    async def _closed(self, uow: UnitOfWork[DeviceRepository], ticket: Ticket) -> None:
        """Writes the close: the ticket, its anomalies' root cause and corrective action, the
        events (ticket closed; the device's condition after maintenance)."""
        assert ticket.closed_at is not None
        await uow.repos.update_ticket(ticket)
        await uow.repos.close_anomalies(
            ticket.id,
            root_cause_code=ticket.root_cause_code,
            corrective_action_code=ticket.corrective_action_code,
            note=ticket.resolution_note,
            at=ticket.closed_at,
        )
        order_id = ticket.order_id or ""
        uow.emit(events.ticket_closed(ticket), order_id=order_id)
        state = self.book.get(ticket.device_id) or DeviceState(ticket.device_id)
        view = health_of(state, now=ticket.closed_at, rules=self.rules)
        after = condition.end_maintenance(
            abnormal=view.state is not HealthState.GOOD, failing=bool(view.failing)
        )
        await uow.repos.mark_device_changed(ticket.device_id, ticket.closed_at)
        uow.emit(events.health_changed(ticket.device_id, state.abnormal, after), order_id=order_id)
        if not work.blocks_work(state.abnormal, under_maintenance=False):
            # Out of maintenance with no alarm open that stops work: fit again.
            uow.emit(
                events.device_recovered(
                    ticket.device_id,
                    (),
                    at=ticket.closed_at,
                    rules_version=self.rules.version,
                    condition=after,
                    ticket_id=ticket.id,
                ),
                order_id=order_id,
            )
        log.info(
            "maintenance ticket closed",
            ticket_id=ticket.id,
            device_id=ticket.device_id,
            reason=ticket.close_reason,
            by=ticket.closed_by,
        )

    def _leave_maintenance(self, ticket: Ticket) -> None:
        self.book.tickets.pop(ticket.device_id, None)
        if ticket.closed_at is not None:
            self.closed_at[ticket.device_id] = ticket.closed_at
        state = self.book.get(ticket.device_id)
        if state is not None:
            self.book.put_all([replace(state, under_maintenance=False)])

    def _remember(self, ticket: Ticket) -> None:
        if ticket.device_id in self.book.tickets:
            self.book.tickets[ticket.device_id] = ticket

    async def _get(self, uow: UnitOfWork[DeviceRepository], ticket_id: str) -> Ticket:
        ticket = await uow.repos.get_ticket(ticket_id)
        if ticket is None:
            raise NotFound("ticket", ticket_id)
        return ticket
