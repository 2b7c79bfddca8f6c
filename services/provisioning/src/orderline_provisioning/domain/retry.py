"""Backoff for transient failures of the calls a step makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    # Share of the delay randomised (0.2: ±20 %) so that jobs failing together spread out.
    jitter: float = 0.2

    def delay(self, failures: int, spread: float = 0.5) -> timedelta:
        """Delay before the next try after `failures` failed tries in a row (1, 2, …).

        `spread` in [0, 1] picks the point in the jitter band (0.5: none); the caller draws it.
        """
        if failures < 1:
            return timedelta(0)
        base = min(self.initial_seconds * 2 ** (failures - 1), self.max_seconds)
        factor = 1 + self.jitter * (2 * min(max(spread, 0.0), 1.0) - 1)
        return timedelta(seconds=base * factor)
