"""Background task: rebuild the in-memory health book from the database once it is migrated."""

from __future__ import annotations

import asyncio

from orderline_device_monitor.app.book import HealthBook, restore_from_database
from orderline_runtime.database import Database
from orderline_runtime.logs import get_logger

log = get_logger(__name__)


class HealthBookRestorer:
    def __init__(self, db: Database, book: HealthBook) -> None:
        self.db = db
        self.book = book

    async def run(self, stop: asyncio.Event) -> None:
        """Restores once (the runtime restarts this task if the database is not there yet),
        then idles until the service stops."""
        if not self.book.ready.is_set():
            await restore_from_database(self.db, self.book)
            self.book.ready.set()
            log.info("device health restored", devices=len(self.book))
        await stop.wait()
