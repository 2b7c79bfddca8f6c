"""Which partitions of the fleet this replica evaluates: those whose lease it holds.

Several device-monitor replicas on one database must never evaluate the same device: each would
see part of its samples, judge pending periods and heartbeats on them, and raise or clear alarms
the other does not know of. So the fleet is cut into partitions (app/partitions.py), each a
lease in NATS (orderline_runtime.messaging.lease.LeaseSet, keyed by the database written): every
replica keeps a membership entry, aims at ceil(partitions / live replicas) of them, takes free
ones and gives its surplus back when another replica joins. A replica restores from the
database the book of the partitions it takes (their open alarms, tickets, access nodes), then
evaluates, answers, ticks heartbeats and escalates for their devices; calls about other devices
go to their owners (api/routing.py). A partition given back is dropped from the book, under the
ingest lock, before its lease is deleted; one whose lease could not be renewed is dropped after
the batch in hand, a third of the lease before anyone else may take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.book import HealthBook, restore_from_database
from orderline_device_monitor.app.ingest import TelemetryIngest
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.lease import LeaseSet
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

# The bucket NATS lets device-monitor write (orderline_runtime.messaging.permissions).
BUCKET = "orderline_device_monitor_leader"


def lease_key(database_url: str) -> str:
    """Replicas writing one database share one fleet; a test's or another fleet's device-monitor
    on its own database is not their rival."""
    return "db-" + hashlib.sha256(database_url.encode()).hexdigest()[:24]


class Ownership:
    def __init__(
        self,
        bus: EventBus,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        ingest: TelemetryIngest,
        *,
        database_url: str,
        replica: str,
        ttl_seconds: float,
        address: Callable[[], str],
        on_taken: Callable[[], None] = lambda: None,
    ) -> None:
        self.uow = uow
        self.book = book
        self.ingest = ingest
        self.replica = replica
        self.on_taken = on_taken
        self.partitions = book.partitions
        self.leases = LeaseSet(
            bus,
            bucket=BUCKET,
            prefix=lease_key(database_url),
            count=self.partitions.count,
            holder=replica,
            ttl_seconds=ttl_seconds,
            advertise=address,
            before_release=self._give_back,
        )
        self.partitions.set_owned(())

    def owner_of(self, partition: int) -> str | None:
        """Where another replica evaluating the partition answers, as last read; else None."""
        seen = self.leases.others.get(partition)
        return seen[1] or None if seen is not None else None

    def restoring(self, partition: int) -> bool:
        """Held here, its book not restored yet."""
        return partition in self.leases.held and partition not in self.partitions.owned

    def serving(self) -> bool:
        """Readiness: the others' partitions read once, and the book of every partition held here
        restored."""
        return (
            self.leases.seen
            and self.book.ready.is_set()
            and self.leases.held == self.partitions.owned
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Holds this replica's share of the partitions until the service stops; follows each
        change."""
        holding = asyncio.create_task(self.leases.run(stop), name="partition-leases")
        try:
            while not stop.is_set():
                if self.leases.held != self.partitions.owned:
                    await self._sync()
                else:
                    if self.leases.seen:
                        self.book.ready.set()
                    await self.leases.wait_changed(stop)
        finally:
            await self._give_back(self.partitions.owned)
            if not stop.is_set():
                # Crashed (say, the database was away while restoring): give the leases back;
                # the runtime restarts this task, which takes its share again.
                holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

    async def _sync(self) -> None:
        async with self.ingest.lock:
            held, owned = self.leases.held, self.partitions.owned
            if owned - held:
                self._drop(owned - held)
            taken = held - owned
            if taken:
                log.info("partitions taken: restoring their devices", partitions=sorted(taken))
                await restore_from_database(self.uow, self.book, owned=held)
                lost = self.partitions.owned - self.leases.held
                if lost:  # while reading the database
                    self._drop(lost)
                self.on_taken()
                log.info(
                    "evaluating partitions",
                    replica=self.replica,
                    partitions=sorted(self.partitions.owned),
                    devices=len(self.book),
                )
            if self.leases.seen:
                self.book.ready.set()

    async def _give_back(self, partitions: frozenset[int]) -> None:
        """Before a partition's lease is deleted: nothing of it is evaluated once this returns
        (after the batch or person's action in hand)."""
        if not partitions & self.partitions.owned:
            return
        async with self.ingest.lock:
            self._drop(partitions)

    def _drop(self, partitions: frozenset[int]) -> None:
        gone = partitions & self.partitions.owned
        if not gone:
            return
        self.partitions.set_owned(self.partitions.owned - gone)
        devices = self.book.drop_unowned()
        self.ingest.forget(devices)
        log.warning(
            "partitions left to other replicas", replica=self.replica, partitions=sorted(gone)
        )
