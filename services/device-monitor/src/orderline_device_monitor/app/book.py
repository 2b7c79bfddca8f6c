"""The in-memory health of every device: the alarm evaluator's state, its open alarms and when
it was last seen.

Telemetry is evaluated against this book, never against the database; the database is read
at start, when the replica takes partitions over (and after a conflict) to rebuild it. Several
replicas on one database split the fleet into partitions (app/partitions.py, app/ownership.py):
each book holds the devices of the partitions its replica evaluates, and no device is in two
books at once (the database still refuses a second open alarm per device and category). Only
the open alarms
and open tickets survive a restart: the evaluator's pending periods, keep-firing times and flap
histories start again, with every open alarm's category taken as raised at its severity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.partitions import Partitions
from orderline_device_monitor.app.records import AlarmRecord
from orderline_device_monitor.app.site import SiteBook
from orderline_device_monitor.domain.evaluator import align
from orderline_device_monitor.domain.health import Category, DeviceState, OpenAlarm, Severity
from orderline_device_monitor.domain.tickets import Ticket
from orderline_runtime.errors import Unavailable
from orderline_runtime.unit_of_work import UnitOfWorkFactory

READY_WAIT_SECONDS = 5.0


class HealthBook:
    def __init__(self, partitions: Partitions | None = None) -> None:
        self._states: dict[str, DeviceState] = {}
        # The open maintenance ticket of each device that has one: the device is under
        # maintenance while it is here (changed only after the ticket's transaction commits).
        self.tickets: dict[str, Ticket] = {}
        # Access nodes: each device's, and the open access-node alarms (app/site.py).
        self.site = SiteBook()
        self.ready = asyncio.Event()
        # Which partitions this replica evaluates (every one unless replicas share the fleet).
        self.partitions = partitions or Partitions()

    def drop_unowned(self) -> list[str]:
        """Forgets the devices (and access nodes) of partitions this replica no longer
        evaluates; returns the devices forgotten."""
        partitions = self.partitions
        if partitions.all_owned:
            return []
        gone = [d for d in self._states if not partitions.owns_device(d)]
        for device_id in gone:
            del self._states[device_id]
        for device_id in [d for d in self.tickets if not partitions.owns_device(d)]:
            del self.tickets[device_id]
        site = self.site
        for device_id in [d for d in site.node_of if not partitions.owns_device(d)]:
            node_id = site.node_of.pop(device_id)
            site.members.get(node_id, set()).discard(device_id)
        for node_id in [n for n in site.alarms if not partitions.owns_key(n)]:
            del site.alarms[node_id]
        return gone

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
            raise Unavailable(
                "device health is still being restored from the database; retry shortly",
                reason="HEALTH_STATE_LOADING",
            ) from None


def _assumed_severity(category: Category) -> Severity:
    """For an alarm raised before alarms had a severity: the least that made it abnormal."""
    return Severity.CRITICAL if category is Category.SAFETY else Severity.MAJOR


async def restore_from_database(
    uow: UnitOfWorkFactory[DeviceRepository],
    book: HealthBook,
    *,
    owned: frozenset[int] | None = None,
) -> None:
    """Rebuilds the book from the devices ever seen and the alarms still open, of the
    partitions the book's replica evaluates (`owned` from now on, when given); each device's key
    is learnt on the way. Nothing changes before every read is done."""
    async with uow(read_only=True) as tx:
        keys = await tx.repos.partition_keys()
        open_alarms = await tx.repos.open_alarms()
        open_tickets = await tx.repos.open_tickets()
        access_nodes = await tx.repos.access_nodes()
    partitions = book.partitions
    partitions.learn(keys)
    if owned is not None:
        partitions.set_owned(owned)
    if not partitions.all_owned:
        owns = partitions.owns_device
        open_alarms = [
            a
            for a in open_alarms
            if (partitions.owns_key(a.device_id) if a.is_access_node else owns(a.device_id))
        ]
        open_tickets = [t for t in open_tickets if owns(t.device_id)]
        access_nodes = {d: n for d, n in access_nodes.items() if owns(d)}
        book.drop_unowned()
    book.restore(
        [d for d in keys if partitions.owns_device(d)], open_alarms, open_tickets, access_nodes
    )
