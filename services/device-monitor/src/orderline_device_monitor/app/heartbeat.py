"""Background task: the heartbeat check, on the service's clock, once a second."""

from __future__ import annotations

import asyncio

from orderline_device_monitor.app.ingest import TelemetryIngest

TICK_SECONDS = 1.0


class HeartbeatTicker:
    def __init__(self, ingest: TelemetryIngest, every_seconds: float = TICK_SECONDS) -> None:
        self.ingest = ingest
        self.every_seconds = every_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Ticks until the service stops (the runtime restarts this task if a tick fails, say
        while the database is away)."""
        while not stop.is_set():
            await self.ingest.tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every_seconds)
            except TimeoutError:
                continue
