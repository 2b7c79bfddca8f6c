"""A set of leases on a real NATS JetStream server: members share the slots, never one slot held
by two; a clean stop hands its slots over at once, a member cut off from NATS steps down before
the others take its slots, and a member restarted under its own name takes its slots back."""

from __future__ import annotations

import asyncio
from typing import Any

from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.lease import LeaseSet

TTL = 1.5


SLOTS = 6


class Member:
    """A LeaseSet on its own NATS connection, run as a replica would run it; records the slots
    it gave back (before_release) in order."""

    def __init__(
        self, url: str, name: str, *, bucket: str = "test_lease_sets", ttl: float = TTL
    ) -> None:
        self.bus = EventBus(url, name=name)
        self.released: list[frozenset[int]] = []
        self.leases = LeaseSet(
            self.bus,
            bucket=bucket,
            prefix="fleet-b",
            count=SLOTS,
            holder=name,
            ttl_seconds=ttl,
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


async def test_a_member_restarted_under_its_own_name_takes_its_slots_back(
    nats_server: NatsServer,
) -> None:
    # A long ttl: the killed member's entries (renewed at most 2 s before it died) are still
    # live while the restarted one takes them, so it can only have taken them by name.
    ttl = 6.0
    seen: list[list[frozenset[int]]] = []
    first = await Member(nats_server.url, "pod-7-1", bucket="test_lease_restart", ttl=ttl).start()

    async def probe_first() -> list[frozenset[int]]:
        return split([first], seen)

    await eventually(probe_first, lambda h: len(h[0]) == SLOTS, 5, "first holds every slot")
    await first.cut_off()  # killed: it gives nothing back
    first.stop.set()
    again = await Member(nats_server.url, "pod-7-1", bucket="test_lease_restart", ttl=ttl).start()

    async def probe_again() -> list[frozenset[int]]:
        return split([again], seen)

    await eventually(probe_again, lambda h: len(h[0]) == SLOTS, 3.5, "taken back by name")
    await again.stop_cleanly()
