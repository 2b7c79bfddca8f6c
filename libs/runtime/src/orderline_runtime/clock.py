"""The clock: one injectable source of "now", always timezone-aware UTC.

Apps and domain code take a `Clock` (a bootstrap passes `system_clock`); tests pass a fixed or
stepping one. Nothing imports its own `utcnow`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
