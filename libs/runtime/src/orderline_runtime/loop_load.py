"""How busy this process's event loop is, so that admission can shed calls before the loop is
so saturated that new calls stop reaching their handlers at all.

grpc.aio takes one call at a time from the C core, and each hand-over needs a few event-loop
iterations. Once the loop is saturated those iterations are shared with every other ready
callback, and calls wait in the C core's pending queue, where no handler sees them, until
their deadline passes (docs/performance.md, "why the transport queue forms"). Refusing calls
with RESOURCE_EXHAUSTED while the loop is that busy frees it, and the rest get through.

The measure is the share of wall time the loop spends running callbacks rather than waiting in
`select`: the loop runs on a selector that times its own waits (`TimedSelector`, installed by
`new_event_loop`, which `run_service` uses). Without it (a loop made elsewhere, as in tests),
the loop counts as idle.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable
from typing import Any


class TimedSelector(selectors.DefaultSelector):
    """The platform's selector, timing the loop's waits in it: the loop's busy share over
    samples of `sample_seconds`, smoothed so that about the last second counts."""

    def __init__(
        self,
        *,
        sample_seconds: float = 0.1,
        smoothing: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.sample_seconds = sample_seconds
        self.smoothing = smoothing
        self._clock = clock
        self._since = clock()
        self._idle = 0.0
        self.busy = 0.0

    def select(self, timeout: float | None = None) -> Any:
        start = self._clock()
        try:
            return super().select(timeout)
        finally:
            self.account(self._clock() - start, self._clock())

    def account(self, idle: float, now: float) -> None:
        """Adds a wait of `idle` seconds ending at `now`; closes a sample when one is due."""
        self._idle += idle
        elapsed = now - self._since
        if elapsed < self.sample_seconds:
            return
        share = max(0.0, 1.0 - self._idle / elapsed)
        # Weighted by its length: one wait of a second counts as the ten samples it spans.
        weight = 1.0 - (1.0 - self.smoothing) ** (elapsed / self.sample_seconds)
        self.busy += weight * (share - self.busy)
        self._since = now
        self._idle = 0.0


_selector: TimedSelector | None = None
_shed_above = 1.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop, on a TimedSelector."""
    global _selector
    _selector = TimedSelector()
    return asyncio.SelectorEventLoop(_selector)


def configure(shed_above: float) -> None:
    """The busy share above which `saturated()` is true (1.0: never)."""
    global _shed_above
    _shed_above = shed_above


def busy_share() -> float:
    return _selector.busy if _selector is not None else 0.0


def saturated() -> bool:
    return busy_share() > _shed_above
