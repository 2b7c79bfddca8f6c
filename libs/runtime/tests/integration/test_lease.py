"""The lease on a real NATS JetStream server: one holder at a time, a clean stop hands over at
once, a holder cut off from NATS steps down before its successor takes over, and a holder
restarted under its own name takes its entry back."""

from __future__ import annotations

import asyncio
from typing import Any

from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.lease import Lease, LeaseSet

TTL = 1.5
KEY = "fleet-a"


class Holder:
    """A lease on its own NATS connection, run as a replica would run it."""

    def __init__(self, url: str, name: str) -> None:
        self.bus = EventBus(url, name=name)
        self.lease = Lease(self.bus, bucket="test_leases", key=KEY, holder=name, ttl_seconds=TTL)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Holder:
        await self.bus.connect(streams=[])
        self.task = asyncio.create_task(self.lease.run(self.stop))
        return self

    async def stop_cleanly(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task
        await self.bus.drain()

    async def cut_off(self) -> None:
        """Its NATS connection dies under it; the loop goes on, unable to renew."""
        nc: Any = self.bus._nc
        await nc.close()


async def held_by(holders: list[Holder]) -> list[str]:
    return [h.lease.holder for h in holders if h.lease.held]


async def test_one_holder_at_a_time_and_a_clean_stop_hands_over_at_once(
    nats_server: NatsServer,
) -> None:
    a = await Holder(nats_server.url, "replica-a").start()
    await eventually(lambda: held_by([a]), lambda h: h == ["replica-a"], 5, "a takes the lease")
    b = await Holder(nats_server.url, "replica-b").start()
    # b keeps trying for several renewals of a's and never holds it beside a.
    for _ in range(8):
        await asyncio.sleep(TTL / 4)
        assert await held_by([a, b]) == ["replica-a"]
    assert b.lease.holder_seen == "replica-a"

    await a.stop_cleanly()
    # a gave the key back: b takes it on its next try, long before a ttl.
    await eventually(lambda: held_by([a, b]), lambda h: h == ["replica-b"], TTL, "b takes over")
    await b.stop_cleanly()


async def test_a_holder_cut_off_steps_down_before_another_takes_over(
    nats_server: NatsServer,
) -> None:
    a = await Holder(nats_server.url, "replica-a").start()
    await eventually(lambda: held_by([a]), lambda h: h == ["replica-a"], 5, "a takes the lease")
    b = await Holder(nats_server.url, "replica-b").start()
    await a.cut_off()
    seen: list[list[str]] = []

    async def watch() -> list[str]:
        now = await held_by([a, b])
        seen.append(now)
        return now

    await eventually(watch, lambda h: h == ["replica-b"], 10, "b takes over after the ttl")
    # Never both at once, and a had stepped down (by its own clock) before b held it.
    assert all(len(h) <= 1 for h in seen)
    assert not a.lease.held
    a.stop.set()
    await b.stop_cleanly()


async def test_a_holder_restarted_under_its_own_name_takes_its_entry_back(
    nats_server: NatsServer,
) -> None:
    first = await Holder(nats_server.url, "pod-7-1").start()
    await eventually(lambda: held_by([first]), lambda h: h == ["pod-7-1"], 5, "first holds it")
    await first.cut_off()  # killed: it gives nothing back
    first.stop.set()
    again = await Holder(nats_server.url, "pod-7-1").start()
    other = await Holder(nats_server.url, "pod-8-1").start()
    await eventually(lambda: held_by([again]), lambda h: h == ["pod-7-1"], TTL, "taken back")
    assert await held_by([other]) == []
    await again.stop_cleanly()
    await other.stop_cleanly()


# --- a set of leases spread over members ---------------------------------------------------

SLOTS = 6


class Member:
    """A LeaseSet on its own NATS connection, run as a replica would run it; records the slots
    it gave back (before_release) in order."""

    def __init__(self, url: str, name: str) -> None:
        self.bus = EventBus(url, name=name)
        self.released: list[frozenset[int]] = []
        self.leases = LeaseSet(
            self.bus,
            bucket="test_lease_sets",
            prefix="fleet-b",
            count=SLOTS,
            holder=name,
            ttl_seconds=TTL,
            advertise=lambda: f"{name}:50053",
            before_release=self._releasing,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _releasing(self, slots: frozenset[int]) -> None:
        self.released.append(slots)

    async def start(self) -> Member:
        await self.bus.connect(streams=[])
        self.task = asyncio.create_task(self.leases.run(self.stop))
        return self

    async def stop_cleanly(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task
        await self.bus.drain()

    async def cut_off(self) -> None:
        nc: Any = self.bus._nc
        await nc.close()


def split(members: list[Member], seen: list[list[frozenset[int]]]) -> list[frozenset[int]]:
    """Each member's slots now; never one slot held by two."""
    now = [m.leases.held for m in members]
    seen.append(now)
    every = [s for held in now for s in held]
    assert len(every) == len(set(every)), now
    return now


async def test_members_share_the_slots_and_a_newcomer_gets_its_share(
    nats_server: NatsServer,
) -> None:
    seen: list[list[frozenset[int]]] = []
    a = await Member(nats_server.url, "member-a").start()

    async def probe_a() -> list[frozenset[int]]:
        return split([a], seen)

    await eventually(probe_a, lambda h: len(h[0]) == SLOTS, 5, "a alone takes every slot")
    b = await Member(nats_server.url, "member-b").start()

    async def probe_ab() -> list[frozenset[int]]:
        return split([a, b], seen)

    await eventually(probe_ab, lambda h: [len(x) for x in h] == [3, 3], 10, "a and b share")
    # a gave back what b took, before b could take it.
    assert frozenset().union(*a.released) == b.leases.held
    # a learns where b's slots are (and what b advertises) on its next round.

    async def others_of_a() -> dict[int, tuple[str, str]]:
        return a.leases.others

    await eventually(
        others_of_a,
        lambda o: o == dict.fromkeys(b.leases.held, ("member-b", "member-b:50053")),
        5,
        "a knows b's slots",
    )
    c = await Member(nats_server.url, "member-c").start()

    async def probe_abc() -> list[frozenset[int]]:
        return split([a, b, c], seen)

    await eventually(probe_abc, lambda h: [len(x) for x in h] == [2, 2, 2], 10, "three share")
    assert c.leases.members == 3
    await b.stop_cleanly()  # gives its slots back at once
    await eventually(probe_abc, lambda h: sorted(len(x) for x in h) == [0, 3, 3], 10, "two left")
    await a.stop_cleanly()
    await c.stop_cleanly()


async def test_a_dead_members_slots_are_taken_over_after_the_ttl(nats_server: NatsServer) -> None:
    seen: list[list[frozenset[int]]] = []
    a = await Member(nats_server.url, "member-d").start()
    b = await Member(nats_server.url, "member-e").start()

    async def probe() -> list[frozenset[int]]:
        return split([a, b], seen)

    await eventually(probe, lambda h: [len(x) for x in h] == [3, 3], 10, "a and b share")
    await a.cut_off()  # gives nothing back
    await eventually(probe, lambda h: h == [frozenset(), frozenset(range(SLOTS))], 10, "b has all")
    # a had stepped down on its own clock; no slot was ever held twice (split asserts).
    assert not a.leases.held
    a.stop.set()
    await b.stop_cleanly()
