"""The in-memory health of every device: the alarm evaluator's state, its open alarms and when
it was last seen.

Telemetry is evaluated against this book, never against the database; the database is read
once at start (and after a conflict) to rebuild it. One process holds the book, so
one replica per database evaluates the fleet at a time: the one holding the leader lease
(app/leadership.py); the others keep no book and answer UNAVAILABLE until they take over (the
database still refuses a second open alarm per device and category). Only the open alarms
and open tickets survive a restart: the evaluator's pending periods, keep-firing times and flap
histories start again, with every open alarm's category taken as raised at its severity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.records import AlarmRecord
from orderline_device_monitor.app.site import SiteBook
from orderline_device_monitor.domain.evaluator import align
from orderline_device_monitor.domain.health import Category, DeviceState, OpenAlarm, Severity
from orderline_device_monitor.domain.tickets import Ticket
from orderline_runtime.errors import Unavailable
from orderline_runtime.unit_of_work import UnitOfWorkFactory

READY_WAIT_SECONDS = 5.0


class HealthBook:
    def __init__(self) -> None:
        self._states: dict[str, DeviceState] = {}
        # The open maintenance ticket of each device that has one: the device is under
        # maintenance while it is here (changed only after the ticket's transaction commits).
        self.tickets: dict[str, Ticket] = {}
        # Access nodes: each device's, and the open access-node alarms (app/site.py).
        self.site = SiteBook()
        self.ready = asyncio.Event()
        # False on a standby replica: another replica evaluates the fleet.
        self.active = True

    def clear(self) -> None:
        """Forgets every device (a replica stepping down)."""
        self.ready.clear()
        self._states = {}
        self.tickets = {}
        self.site = SiteBook()

    def get(self, device_id: str) -> DeviceState | None:
        return self._states.get(device_id)

    def lookup(self) -> Callable[[str], DeviceState | None]:
        """``get`` as the mapping's own method, for a loop over a batch (valid until the book is
        cleared)."""
        return self._states.get

    def states(self) -> list[DeviceState]:
        return list(self._states.values())

    def put_all(self, states: Iterable[DeviceState]) -> None:
        for state in states:
            self._states[state.device_id] = state

    def put_by_id(self, states: Mapping[str, DeviceState]) -> None:
        """``put_all(states.values())`` for states keyed by their device ids, in one update."""
        self._states.update(states)

    def __len__(self) -> int:
        return len(self._states)

    def restore(
        self,
        device_ids: Iterable[str],
        open_alarms: Iterable[AlarmRecord],
        open_tickets: Iterable[Ticket] = (),
        access_nodes: Mapping[str, str] | None = None,
    ) -> None:
        """Replaces every device's open alarms and open ticket with the database's (a device is
        under maintenance while its ticket is open); keeps when it was seen."""
        self.tickets = {t.device_id: t for t in open_tickets}
        records = list(open_alarms)
        self.site.restore(access_nodes or {}, records)
        node_alarms = self.site.alarm_ids()
        by_device: dict[str, dict[Category, OpenAlarm]] = {}
        for alarm in records:
            if alarm.is_access_node:
                continue
            parent = alarm.parent_alarm_id if alarm.suppressed else None
            by_device.setdefault(alarm.device_id, {})[alarm.category] = OpenAlarm(
                alarm.id,
                alarm.raised_at,
                alarm.severity or _assumed_severity(alarm.category),
                parent,
                alarm.repeat_count,
                site_parent_id=parent if parent in node_alarms else None,
            )
        for device_id in {*device_ids, *by_device, *self._states, *self.tickets}:
            current = self._states.get(device_id) or DeviceState(device_id)
            alarms: Mapping[Category, OpenAlarm] = by_device.get(device_id, {})
            self._states[device_id] = DeviceState(
                device_id=device_id,
                under_maintenance=device_id in self.tickets,
                open_alarms=alarms,
                last_seen=current.last_seen,
                last_observed=current.last_observed,
                evaluation=align(
                    current.evaluation, device_id, {c: a.severity for c, a in alarms.items()}
                ),
            )

    async def wait_ready(self, limit_seconds: float = READY_WAIT_SECONDS) -> None:
        if self.ready.is_set():
            return
        try:
            # Restoring, or about to lead (a replica starting alone takes the lease at once).
            await asyncio.wait_for(self.ready.wait(), timeout=limit_seconds)
        except TimeoutError:
            if not self.active:
                # Another replica leads and this one does not know where (or it just died):
                # the caller retries, and a standby that knows the leader forwards.
                raise Unavailable(
                    "this device-monitor replica is on standby; another one evaluates the fleet",
                    reason="STANDBY_REPLICA",
                ) from None
            raise Unavailable(
                "device health is still being restored from the database; retry shortly",
                reason="HEALTH_STATE_LOADING",
            ) from None


def _assumed_severity(category: Category) -> Severity:
    """For an alarm raised before alarms had a severity: the least that made it abnormal."""
    return Severity.CRITICAL if category is Category.SAFETY else Severity.MAJOR


async def restore_from_database(uow: UnitOfWorkFactory[DeviceRepository], book: HealthBook) -> None:
    """Rebuilds the book from the devices ever seen and the alarms still open."""
    async with uow(read_only=True) as tx:
        device_ids = await tx.repos.known_devices()
        open_alarms = await tx.repos.open_alarms()
        open_tickets = await tx.repos.open_tickets()
        access_nodes = await tx.repos.access_nodes()
    book.restore(device_ids, open_alarms, open_tickets, access_nodes)
