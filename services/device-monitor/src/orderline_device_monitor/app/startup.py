"""Background task: rebuild the in-memory health book from the database once it is migrated."""

from __future__ import annotations

import asyncio

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.book import HealthBook, restore_from_database
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


class HealthBookRestorer:
    def __init__(self, uow: UnitOfWorkFactory[DeviceRepository], book: HealthBook) -> None:
        self.uow = uow
        self.book = book

    async def run(self, stop: asyncio.Event) -> None:
        """Restores once (the runtime restarts this task if the database is not there yet),
        then idles until the service stops."""
        if not self.book.ready.is_set():
            await restore_from_database(self.uow, self.book)
            self.book.ready.set()
            log.info("device health restored", devices=len(self.book))
        await stop.wait()
