"""Keeps the projection's checkpoints bounded: the last N, and the last of each hour of event
time (docs/reporting.md, "Checkpoints").

The projector records one checkpoint per committed transaction, so the table grows with the
event rate. A rebuild needs far fewer to audit the projection: the recent ones (where a
difference would show first) and a regular series through the past, which hours of the
producers' time give whatever the rate was. Run as a background task every `poll_seconds`;
each run is one DELETE, and two replicas running it at once delete the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib

from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

POLL_SECONDS = 300.0


class CheckpointPruner:
    def __init__(
        self,
        uow: UnitOfWorkFactory[ProjectionRepository],
        keep: int,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.uow = uow
        self.keep = keep
        self.poll_seconds = poll_seconds

    async def prune(self) -> int:
        """Checkpoints deleted: all but the last `keep` and the last of each hour."""
        async with self.uow() as uow:
            deleted = await uow.repos.prune_checkpoints(self.keep)
        if deleted:
            log.info("projection checkpoints pruned", deleted=deleted, keep=self.keep)
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Prunes every `poll_seconds` until stopped (the first time at start)."""
        while not stop.is_set():
            await self.prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
