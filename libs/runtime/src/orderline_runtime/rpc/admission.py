"""Admission of commands under overload: a call waits its turn within its own deadline, or is
shed with RESOURCE_EXHAUSTED before it has written anything.

Without it, a burst of commands all start at once and queue inside the database (SQLite takes
one writer at a time), where the slowest give up after the lock timeout with UNAVAILABLE. Here
at most `limit` run together; the rest wait in arrival order, each no longer than its deadline
allows, and no more than `max_waiting` wait at all.

A call that could not finish within its deadline is shed when it arrives, not when its
deadline runs out: the time a turn holds its slot is measured (a moving average), and a call is
refused at once when the turns ahead of it plus its own would take longer than it has left.
Without that, under a sustained overload the queue stays as long as the deadline, every call
waits almost all of it, and its turn comes too late to finish: the caller sees
DEADLINE_EXCEEDED after waiting in vain instead of a prompt RESOURCE_EXHAUSTED to back off on.

A call is also shed while the process's event loop is saturated (`loop_load.saturated`): then
new calls barely reach their handlers (grpc.aio hands them over through the loop), so the queue
forms where this class cannot see it, and only refusing work frees the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from orderline_runtime import loop_load
from orderline_runtime.errors import ResourceExhausted


class HasDeadline(Protocol):
    def time_remaining(self) -> float | None: ...


class Admission:
    # Weight of the newest turn in the moving average of the service time: about the last ten
    # turns count, so the estimate follows a change in load within a fraction of a second.
    SMOOTHING = 0.2

    def __init__(
        self,
        limit: int,
        *,
        max_waiting: int,
        wait_without_deadline: float = 5.0,
        margin_seconds: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        saturated: Callable[[], bool] = loop_load.saturated,
    ) -> None:
        self.limit = limit
        self._saturated = saturated
        self._slots = asyncio.Semaphore(limit)
        self.max_waiting = max_waiting
        self.wait_without_deadline = wait_without_deadline
        # Time kept back beyond the expected work: a turn that comes just before the deadline
        # would only produce DEADLINE_EXCEEDED later.
        self.margin_seconds = margin_seconds
        self._clock = clock
        self.waiting = 0
        self.running = 0
        # Seconds a turn holds its slot, averaged; 0 until the first turn has ended.
        self.service_time = 0.0

    def expected_wait(self) -> float:
        """How long a call arriving now would wait for its turn: the slots free at `limit` per
        service time, and this call needs the one after those already waiting."""
        if self.running < self.limit and self.waiting == 0:
            return 0.0
        return (self.waiting + 1) * self.service_time / self.limit

    @asynccontextmanager
    async def turn(self, call: HasDeadline, what: str) -> AsyncIterator[None]:
        remaining = call.time_remaining()
        # The wait may use what the deadline leaves after the work itself and the margin.
        budget = (
            self.wait_without_deadline
            if remaining is None
            else remaining - self.service_time - self.margin_seconds
        )
        if self.waiting >= self.max_waiting or budget <= 0:
            raise ResourceExhausted(
                f"too many {what} calls waiting ({self.waiting}); retry with backoff",
                reason="OVERLOADED",
            )
        if self._saturated():
            raise ResourceExhausted(
                f"the service is saturated; {what} was not started and nothing was written,"
                " retry with backoff",
                reason="OVERLOADED",
            )
        expected = self.expected_wait()
        if expected > budget:
            raise ResourceExhausted(
                f"{what} would wait about {expected * 1000:.0f} ms for its turn, longer than its"
                " deadline allows; nothing was written, retry with backoff",
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
        self.running += 1
        started = self._clock()
        try:
            yield
        finally:
            held = self._clock() - started
            self.service_time = (
                held
                if self.service_time == 0.0
                else self.service_time + self.SMOOTHING * (held - self.service_time)
            )
            self.running -= 1
            self._slots.release()
