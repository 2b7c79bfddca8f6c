"""Open-loop load: CreateOrder calls at a fixed arrival rate (Poisson or evenly spaced), each
sent when its time comes whether or not earlier ones have answered, and a WatchOrders stream
that records when each order completed.

A completion's time is the order's own history entry for the transition to completed (the
time intake committed it), not when the stream delivered it, so the watch's delivery delay
does not count. Times are wall-clock seconds (time.time()): the services run on this machine.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
CLERK: Metadata = (("authorization", "Bearer dev-clerk"),)
# The load is many clerks' work through one front end, a service principal: one person's write
# rate limit (docs/security.md) would otherwise be what the benchmark measures.
FRONT_END: Metadata = (("authorization", "Bearer dev-service"),)
COMPLETED = order_pb2.ORDER_STATE_COMPLETED
# States an order does not leave on its own: counted, so a stuck pipeline is visible.
STOPPED = {
    order_pb2.ORDER_STATE_FAILED,
    order_pb2.ORDER_STATE_HELD,
    order_pb2.ORDER_STATE_REJECTED,
    order_pb2.ORDER_STATE_PENDING,
    order_pb2.ORDER_STATE_CANCELLED,
}


@dataclass
class Call:
    phase: str
    scheduled: float  # when it was due (wall clock)
    sent: float
    latency: float = 0.0
    code: str = ""  # "OK" or the gRPC status name
    order_id: str = ""


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    completed: dict[str, float] = field(default_factory=dict)  # order id -> completion time
    stopped: dict[str, str] = field(default_factory=dict)  # order id -> state name

    def created(self, phase: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.code == "OK" and (phase is None or c.phase == phase)]

    def backlog(self) -> int:
        """Orders created and neither completed nor stopped."""
        return sum(
            1
            for c in self.calls
            if c.code == "OK"
            and c.order_id not in self.completed
            and c.order_id not in self.stopped
        )

    def completions_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.completed.values() if start <= t < end)


def completion_time(order: order_pb2.Order, observed: float) -> float:
    for change in order.history:
        if change.to_state == COMPLETED and change.HasField("at"):
            return change.at.seconds + change.at.nanos / 1e9
    return observed


class Driver:
    """One channel to intake, the watch, and the open-loop sender. `create_metadata` and
    `watch_metadata` carry the front end's and the clerk's tokens (development ones unless
    given)."""

    def __init__(
        self,
        address: str,
        request: Callable[[int], order_pb2.CreateOrderRequest],
        create_metadata: Metadata = FRONT_END,
        watch_metadata: Metadata = CLERK,
    ):
        self.address = address
        self.request = request
        self.create_metadata = create_metadata
        self.watch_metadata = watch_metadata
        self.ledger = Ledger()
        self.deadline = 10.0
        self._index = 0
        self._inflight: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Driver:
        self.channel = grpc.aio.insecure_channel(self.address)
        self.stub = order_pb2_grpc.OrderServiceStub(self.channel)
        self._watch = self.stub.WatchOrders(
            order_pb2.WatchOrdersRequest(), metadata=self.watch_metadata
        )
        self._follower = asyncio.create_task(self._follow())
        await asyncio.sleep(0.5)  # the stream is open before the first order
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._watch.cancel()
        self._follower.cancel()
        for task in list(self._inflight):
            task.cancel()
        await self.channel.close()

    async def _follow(self) -> None:
        try:
            async for update in self._watch:
                order = update.order
                if order.state == COMPLETED and order.id not in self.ledger.completed:
                    self.ledger.completed[order.id] = completion_time(order, time.time())
                elif order.state in STOPPED:
                    self.ledger.stopped[order.id] = order_pb2.OrderState.Name(order.state)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise

    async def _create(self, call: Call, request: order_pb2.CreateOrderRequest) -> None:
        t0 = time.perf_counter()
        try:
            reply = await self.stub.CreateOrder(
                request, metadata=self.create_metadata, timeout=self.deadline
            )
            call.code = "OK"
            call.order_id = reply.order.id
        except grpc.aio.AioRpcError as exc:
            call.code = exc.code().name
        call.latency = time.perf_counter() - t0

    async def open_loop(
        self, phase: str, rate: float, seconds: float, poisson: bool, rng: random.Random
    ) -> tuple[float, float]:
        """Sends at `rate` per second for `seconds`; returns the phase's (start, end) wall
        times. Calls still in flight at the end go on (see `settle`)."""
        loop = asyncio.get_running_loop()
        start_mono, start_wall = loop.time(), time.time()
        due = 0.0
        while True:
            due += rng.expovariate(rate) if poisson else 1 / rate
            if due >= seconds:
                break
            delay = start_mono + due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            call = Call(phase, scheduled=start_wall + due, sent=time.time())
            self.ledger.calls.append(call)
            request = self.request(self._index)
            self._index += 1
            task = asyncio.create_task(self._create(call, request))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        delay = start_mono + seconds - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return start_wall, start_wall + seconds

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def settle(self, limit_s: float) -> None:
        """Waits for CreateOrder calls still in flight, at most `limit_s`."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=limit_s)

    async def drain(self, limit_s: float, poll_s: float = 0.2) -> bool:
        """Waits until every created order completed or stopped; False after `limit_s`."""
        await self.settle(limit_s)
        end = time.monotonic() + limit_s
        while self.ledger.backlog() and time.monotonic() < end:
            if self._follower.done():
                self._follower.result()  # the watch failed: say why
                raise RuntimeError("the WatchOrders stream ended")
            await asyncio.sleep(poll_s)
        return self.ledger.backlog() == 0
