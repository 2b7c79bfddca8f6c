"""The event loop's busy share, as admission reads it to shed under saturation."""

from __future__ import annotations

import asyncio
import time

from orderline_runtime import loop_load
from orderline_runtime.loop_load import TimedSelector


def test_busy_share_follows_the_time_not_spent_waiting_in_select() -> None:
    now = 0.0
    selector = TimedSelector(sample_seconds=0.1, smoothing=0.5, clock=lambda: now)
    # Samples in which the loop waited 10% of the time: busy 0.9, approached by smoothing.
    for _ in range(12):
        now += 0.1
        selector.account(0.01, now)
    assert 0.89 < selector.busy <= 0.9
    # Then idle: waiting all the time.
    for _ in range(12):
        now += 0.1
        selector.account(0.1, now)
    assert selector.busy < 0.01
    selector.close()


def test_waits_shorter_than_a_sample_are_gathered_into_one() -> None:
    now = 0.0
    selector = TimedSelector(sample_seconds=0.1, smoothing=1.0, clock=lambda: now)
    for _ in range(4):
        now += 0.025
        selector.account(0.0125, now)  # half of each stretch spent waiting
    assert selector.busy == 0.5
    selector.close()


def _hold_the_loop(seconds: float) -> None:
    """A callback's work: the loop runs it and waits for nothing meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_loop_on_the_timed_selector_reports_itself_busy_while_callbacks_run() -> None:
    loop = loop_load.new_event_loop()
    try:
        loop_load.configure(0.5)

        async def spin() -> None:
            # Callbacks that never wait: the loop is busy the whole second.
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                _hold_the_loop(0.005)
                await asyncio.sleep(0)

        loop.run_until_complete(spin())
        assert loop_load.busy_share() > 0.5
        assert loop_load.saturated()

        loop.run_until_complete(asyncio.sleep(1.5))  # waiting in select: idle
        assert loop_load.busy_share() < 0.5
        assert not loop_load.saturated()
    finally:
        loop_load.configure(1.0)
        loop.close()
