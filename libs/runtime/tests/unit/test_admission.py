"""Admission under overload: commands take turns in arrival order within their deadlines, and
the ones that cannot get a turn are shed before they start, never half-done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from orderline_runtime.errors import ResourceExhausted
from orderline_runtime.rpc.admission import Admission


@dataclass
class Call:
    remaining: float | None

    def time_remaining(self) -> float | None:
        return self.remaining


async def test_no_more_than_the_limit_run_at_once_and_waiters_go_in_arrival_order() -> None:
    admission = Admission(2, max_waiting=10)
    running, most, started = 0, 0, []
    release = asyncio.Event()

    async def command(n: int) -> None:
        nonlocal running, most
        async with admission.turn(Call(5.0), "CreateOrder"):
            started.append(n)
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(command(n)) for n in range(6)]
    await asyncio.sleep(0.05)
    assert started == [0, 1]
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2
    assert started == [0, 1, 2, 3, 4, 5]


async def test_a_call_whose_deadline_passes_while_waiting_is_shed_and_never_runs() -> None:
    admission = Admission(1, max_waiting=10)
    ran = []
    hold = asyncio.Event()

    async def first() -> None:
        async with admission.turn(Call(5.0), "CreateOrder"):
            await hold.wait()

    blocker = asyncio.create_task(first())
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted, match="within the call's deadline"):
        async with admission.turn(Call(0.2), "CreateOrder"):
            ran.append("late")
    hold.set()
    await blocker
    assert ran == []
    assert admission.waiting == 0
    async with admission.turn(Call(1.0), "CreateOrder"):  # the slot was given back
        ran.append("next")
    assert ran == ["next"]


async def test_a_full_queue_sheds_at_once_and_an_expired_call_is_not_queued() -> None:
    admission = Admission(1, max_waiting=1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with admission.turn(Call(None), "CreateOrder"):
            await hold.wait()

    tasks = [asyncio.create_task(holder()), asyncio.create_task(holder())]
    await asyncio.sleep(0.01)  # one runs, one waits: the queue is full
    # Refused at once (the queue-full answer), not after waiting out its deadline.
    with pytest.raises(ResourceExhausted, match="too many CreateOrder calls waiting"):
        async with admission.turn(Call(5.0), "CreateOrder"):
            pass
    with pytest.raises(ResourceExhausted):
        async with admission.turn(Call(0.0), "CreateOrder"):
            pass
    hold.set()
    await asyncio.gather(*tasks)
