"""Which replica evaluates the fleet: the one holding the leader lease.

Several device-monitor replicas on one database must not evaluate the same devices: each would
see part of a device's samples, judge pending periods and heartbeats on them, and raise or
clear alarms the other does not know of. So one replica at a time holds a lease in NATS
(orderline_runtime.messaging.lease), keyed by the database it writes; it restores the health
book from the database, then ingests, answers and ticks. The others keep no book and forward
every call to the leader, whose address the lease carries (api/forwarding.py); knowing no
leader, they answer UNAVAILABLE (STANDBY_REPLICA) and report NOT_SERVING. When the leader
dies, its lease expires and a standby takes over: the open alarms and tickets come back from
the database, as after a restart. A leader that cannot renew steps down before anyone else may
take over, finishing the batch in hand first.
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
from orderline_runtime.messaging.lease import Lease
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

BUCKET = "orderline_device_monitor_leader"


def lease_key(database_url: str) -> str:
    """Replicas writing one database compete for one lease; a test's or another fleet's
    device-monitor on its own database is not their rival."""
    return "db-" + hashlib.sha256(database_url.encode()).hexdigest()[:24]


class Leadership:
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
    ) -> None:
        self.uow = uow
        self.book = book
        self.ingest = ingest
        self.lease = Lease(
            bus,
            bucket=BUCKET,
            key=lease_key(database_url),
            holder=replica,
            ttl_seconds=ttl_seconds,
            advertise=address,
        )
        book.active = False

    def leader(self) -> str | None:
        """Where the leader answers, when this replica stands by and knows it; else None."""
        if self.book.active or self.lease.held:
            return None
        return self.lease.advertised_seen or None

    def serving(self) -> bool:
        """Readiness: the leader once its book is restored, a standby once it knows the leader
        (it forwards every call there, api/forwarding.py)."""
        if self.lease.held:
            return self.book.ready.is_set()
        return self.leader() is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Holds or waits for the lease until the service stops; follows each change."""
        holding = asyncio.create_task(self.lease.run(stop), name="leader-lease")
        try:
            while not stop.is_set():
                if self.lease.held and not self.book.active:
                    await self._take_over()
                elif not self.lease.held and self.book.active:
                    await self._step_down()
                else:
                    await self.lease.wait_changed(stop)
        finally:
            await self._step_down()
            if not stop.is_set():
                # Crashed (say, the database was away while restoring): give the lease back;
                # the runtime restarts this task, which competes again.
                holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

    async def _take_over(self) -> None:
        log.info("leader lease taken: restoring device health", replica=self.lease.holder)
        async with self.ingest.lock:
            self.book.clear()
            self.ingest.forget()
            await restore_from_database(self.uow, self.book)
            self.book.active = True
            self.book.ready.set()
        log.info("evaluating the fleet", replica=self.lease.holder, devices=len(self.book))

    async def _step_down(self) -> None:
        if not self.book.active:
            return
        # After the batch or person's action in hand: nothing is evaluated once this returns.
        async with self.ingest.lock:
            self.book.active = False
            self.book.clear()
            self.ingest.forget()
        log.warning(
            "standing by: another replica may evaluate the fleet", replica=self.lease.holder
        )
