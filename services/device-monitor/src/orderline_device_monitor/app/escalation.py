# Texts for people carry zh-CN punctuation on purpose.
"""Escalation on the service clock, once a second: first-line troubleshooting, then a ticket
when a device does not recover within the window; and a resolved ticket closed once telemetry
confirms its device healthy (``domain/escalation.py`` decides, this carries it out).

Nothing here runs per sample: it reads the in-memory book; it writes only when it acts (an
action tried, a ticket opened or closed). A safety failure does not wait for the tick: the
ingest opens its ticket in the transaction that raises the alarm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.agent import DeviceAgent
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.tickets import TicketDesk, open_ticket_in
from orderline_device_monitor.domain.escalation import (
    Action,
    EscalationPolicy,
    OpenTicket,
    Tried,
    TryAction,
    decide,
    ticket_description,
)
from orderline_device_monitor.domain.health import DeviceState
from orderline_device_monitor.domain.tickets import SYSTEM
from orderline_runtime.clock import Clock
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

TICK_SECONDS = 1.0


def tried_to_json(tried: Tried) -> dict[str, Any]:
    return {
        "action": tried.action.value,
        "at": tried.at.isoformat(),
        "outcome": tried.outcome,
        "detail": tried.detail,
    }


def tried_from_json(data: Mapping[str, Any]) -> Tried:
    return Tried(
        Action(data["action"]),
        datetime.fromisoformat(data["at"]),
        str(data.get("outcome", "")),
        str(data.get("detail", "")),
    )


class Escalation:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        desk: TicketDesk,
        clock: Clock,
        agent: DeviceAgent,
        policy: EscalationPolicy,
    ) -> None:
        self.uow = uow
        self.book = book
        self.desk = desk
        self.clock = clock
        self.agent = agent
        self.policy = policy
        # The first-line actions tried in each device's current episode (restored from the
        # anomaly records of the open alarms on the first tick).
        self.tried: dict[str, tuple[Tried, ...]] = {}
        self._restored = False
        self._tick_lock = asyncio.Lock()

    def restore_later(self) -> None:
        """Devices were taken over from another replica: read their actions tried on the next
        tick."""
        self._restored = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)
            except TimeoutError:
                continue

    async def tick(self) -> int:
        """One pass over the devices; returns how many things it did."""
        if not self.book.ready.is_set():
            return 0
        async with self._tick_lock:
            if not self._restored:
                await self._restore()
            done = 0
            for state in self.book.states():
                device_id = state.device_id
                ticket = self.book.tickets.get(device_id)
                if ticket is not None:
                    if await self.desk.close_if_confirmed(device_id) is not None:
                        done += 1
                    continue
                if not state.open_alarms:
                    self.tried.pop(device_id, None)
                    continue
                if await self._escalate(state):
                    done += 1
            return done

    async def _escalate(self, state: DeviceState) -> bool:
        device_id = state.device_id
        tried = self.tried.get(device_id, ())
        now = self.clock()
        decision = decide(
            state, tried, now, self.policy, not_before=self.desk.closed_at.get(device_id)
        )
        if isinstance(decision, TryAction):
            await self._try(state, decision, now)
            return True
        if isinstance(decision, OpenTicket):
            return await self._open(device_id, decision)
        return False

    async def _try(self, state: DeviceState, decision: TryAction, now: datetime) -> None:
        device_id = state.device_id
        first = min(state.open_alarms.values(), key=lambda a: (a.raised_at, a.alarm_id))
        key = f"{first.alarm_id}:{decision.action.value}"
        if decision.action is Action.REBOOT:
            result = await self.agent.reboot(device_id, key)
        else:  # pragma: no cover - one action today
            raise AssertionError(decision.action)
        tried = Tried(decision.action, now, result.outcome, result.detail)
        self.tried[device_id] = (*self.tried.get(device_id, ()), tried)
        async with self.uow() as uow:
            await uow.repos.add_anomaly_action(
                [a.alarm_id for a in state.open_alarms.values()], tried_to_json(tried)
            )
        log.info(
            "first-line action tried",
            device_id=device_id,
            action=decision.action.value,
            categories=[c.value for c in decision.categories],
            outcome=result.outcome,
            detail=result.detail,
        )

    async def _open(self, device_id: str, decision: OpenTicket) -> bool:
        async with self.desk.lock:
            # Decided outside the lock: the book may have moved since.
            state = self.book.get(device_id)
            if state is None or state.under_maintenance or device_id in self.book.tickets:
                return False
            if decision.category not in state.open_alarms:
                return False
            now = self.clock()
            tried = self.tried.get(device_id, ())
            async with self.uow() as uow:
                usage = await uow.repos.usage_of(device_id)
                ticket = await open_ticket_in(
                    uow,
                    state,
                    rules_version=self.desk.rules.version,
                    reason_code=decision.reason_code,
                    category=decision.category,
                    alarm_id=decision.alarm_id,
                    description=ticket_description(
                        decision, tried, self.policy.recovery_window.total_seconds()
                    ),
                    order_id=usage.order_id if usage else None,
                    by=SYSTEM,
                    at=now,
                )
                full = await uow.repos.get_ticket(ticket.id)
            assert full is not None
            self.desk.enter_maintenance(full)
            self.tried.pop(device_id, None)
        return True

    async def _restore(self) -> None:
        open_ids = {
            a.alarm_id: s.device_id for s in self.book.states() for a in s.open_alarms.values()
        }
        async with self.uow(read_only=True) as uow:
            actions = await uow.repos.anomaly_actions_of_alarms(sorted(open_ids))
        for alarm_id, items in actions.items():
            device_id = open_ids[alarm_id]
            known = {(t.action, t.at) for t in self.tried.get(device_id, ())}
            for item in items:
                tried = tried_from_json(item)
                if (tried.action, tried.at) not in known:
                    known.add((tried.action, tried.at))
                    self.tried[device_id] = (*self.tried.get(device_id, ()), tried)
        self._restored = True
