"""The one way tests wait for an asynchronous effect: poll until it shows, never a fixed sleep.

`eventually` is for code in an event loop, `wait_until` for code outside one (the end-to-end
tests drive real processes from plain threads). Both return the value that satisfied the
check, and fail with what was last seen, so a timeout says how far the system got.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

Retry = Callable[[BaseException], bool]


def _never(_: BaseException) -> bool:
    return False


def _timed_out(what: str, within: float, last: object, detail: object = None) -> AssertionError:
    more = f"; {detail!r}" if detail is not None else ""
    return AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}{more}")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], Any] = bool,
    within: float = 15.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    retry: Retry = _never,
) -> T:
    """Awaits `probe()` until `check` holds on its value (by default: the value is truthy) and
    returns that value. An exception for which `retry` says yes counts as "not yet"."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: object = None
    while True:
        try:
            value = await probe()
            if check(value):
                return value
            last = value
        except Exception as exc:
            if not retry(exc):
                raise
            last = exc
        if loop.time() > deadline:
            raise _timed_out(what, within, last)
        await asyncio.sleep(interval)


def wait_until(
    what: str,
    check: Callable[[], T | None],
    within: float = 120.0,
    *,
    interval: float = 0.25,
    retry: Retry = _never,
    detail: Callable[[], object] | None = None,
) -> T:
    """Calls `check()` until it returns a truthy value and returns it. An exception for which
    `retry` says yes counts as "not yet"; `detail` adds what to show when time runs out."""
    deadline = time.monotonic() + within
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            if not retry(exc):
                raise
            last = exc
        if time.monotonic() > deadline:
            raise _timed_out(what, within, last, detail() if detail else None)
        time.sleep(interval)
