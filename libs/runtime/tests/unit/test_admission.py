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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_call_that_could_not_finish_in_time_is_shed_on_arrival() -> None:
    clock = Clock()
    admission = Admission(1, max_waiting=10, clock=clock)
    async with admission.turn(Call(10.0), "CreateOrder"):
        clock.now += 2.0  # a turn takes 2 s here: the measured service time
    assert admission.service_time == 2.0

    hold = asyncio.Event()

    async def holder() -> None:
        async with admission.turn(Call(10.0), "CreateOrder"):
            await hold.wait()

    running = asyncio.create_task(holder())
    await asyncio.sleep(0)
    # 3 s left: a 2 s wait for the running turn and 2 s of its own do not fit. Refused as it
    # arrives, with the expected wait named; it never joined the queue.
    with pytest.raises(ResourceExhausted, match="would wait about 2000 ms"):
        async with admission.turn(Call(3.0), "CreateOrder"):
            pass
    assert admission.waiting == 0

    # With time enough for the wait and the work, the same call queues and gets its turn.
    ran = []

    async def patient() -> None:
        async with admission.turn(Call(10.0), "CreateOrder"):
            ran.append("patient")

    waiter = asyncio.create_task(patient())
    await asyncio.sleep(0)
    assert admission.waiting == 1
    hold.set()
    await asyncio.gather(running, waiter)
    assert ran == ["patient"]


async def test_the_expected_wait_grows_with_the_queue_and_shrinks_with_more_slots() -> None:
    clock = Clock()
    admission = Admission(2, max_waiting=10, clock=clock)
    async with admission.turn(Call(10.0), "CreateOrder"):
        clock.now += 1.0
    assert admission.expected_wait() == 0.0  # a slot is free

    hold = asyncio.Event()

    async def holder() -> None:
        async with admission.turn(Call(30.0), "CreateOrder"):
            await hold.wait()

    tasks = [asyncio.create_task(holder()) for _ in range(4)]  # two run, two wait
    await asyncio.sleep(0)
    assert (admission.running, admission.waiting) == (2, 2)
    assert admission.expected_wait() == 1.5  # third in line, two slots each freeing per second
    hold.set()
    await asyncio.gather(*tasks)


async def test_while_the_event_loop_is_saturated_a_call_is_shed_even_with_free_slots() -> None:
    busy = True
    admission = Admission(8, max_waiting=10, saturated=lambda: busy)
    ran = []
    with pytest.raises(ResourceExhausted, match="saturated") as refused:
        async with admission.turn(Call(5.0), "CreateOrder"):
            ran.append("while saturated")
    assert refused.value.reason == "OVERLOADED"
    busy = False
    async with admission.turn(Call(5.0), "CreateOrder"):
        ran.append("after")
    assert ran == ["after"]
