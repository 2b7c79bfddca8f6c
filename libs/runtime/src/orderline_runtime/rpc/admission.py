"""Admission of commands under overload: a call waits its turn within its own deadline, or is
shed with RESOURCE_EXHAUSTED before it has written anything.

Without it, a burst of commands all start at once and queue inside the database (SQLite takes
one writer at a time), where the slowest give up after the lock timeout with UNAVAILABLE. Here
at most `limit` run together; the rest wait in arrival order, each no longer than its deadline
allows, and no more than `max_waiting` wait at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from orderline_runtime.errors import ResourceExhausted


class HasDeadline(Protocol):
    def time_remaining(self) -> float | None: ...


class Admission:
    def __init__(
        self,
        limit: int,
        *,
        max_waiting: int,
        wait_without_deadline: float = 5.0,
        margin_seconds: float = 0.05,
    ) -> None:
        self._slots = asyncio.Semaphore(limit)
        self.max_waiting = max_waiting
        self.wait_without_deadline = wait_without_deadline
        # Time kept back for the work itself: a turn that comes just before the deadline would
        # only produce DEADLINE_EXCEEDED later.
        self.margin_seconds = margin_seconds
        self.waiting = 0

    @asynccontextmanager
    async def turn(self, call: HasDeadline, what: str) -> AsyncIterator[None]:
        remaining = call.time_remaining()
        budget = self.wait_without_deadline if remaining is None else remaining
        budget -= self.margin_seconds
        if self.waiting >= self.max_waiting or budget <= 0:
            raise ResourceExhausted(
                f"too many {what} calls waiting ({self.waiting}); retry with backoff",
                reason="OVERLOADED",
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(budget):
                await self._slots.acquire()
        except TimeoutError:
            raise ResourceExhausted(
                f"no turn for {what} within the call's deadline; nothing was written",
                reason="OVERLOADED",
            ) from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()
