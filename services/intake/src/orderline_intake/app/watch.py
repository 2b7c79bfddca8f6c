"""Open watches of orders, fed by this process's commits instead of each polling the database.

Every order this process saves is handed, once its transaction commits, to every open watch
that wants it, in commit order: a watcher sees each change (each state, each milestone) and
none is merged away. Changes committed by another replica are not seen here; a watch catches
them up by asking the database, now and then, which orders changed and at what version
(`OrderRepository.versions_since`: ids and versions only), and loads only those it has not
seen at that version. With one replica that check finds nothing to load.

A watcher that falls `QUEUE_LIMIT` changes behind is not allowed to hold memory without
bound: its queue is dropped and it catches up from the database at once, where it sees each
order's latest state (the intermediate ones of that burst are merged away for it alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from orderline_intake.domain.order import Order

QUEUE_LIMIT = 10_000


class Subscription:
    def __init__(self, order_ids: Collection[str]) -> None:
        self.order_ids = frozenset(order_ids)
        self.queue: asyncio.Queue[Order] = asyncio.Queue()
        self.overflowed = asyncio.Event()

    def wants(self, order: Order) -> bool:
        return not self.order_ids or order.id in self.order_ids

    def caught_up(self) -> None:
        """After a catch-up from the database: the feed is followed again."""
        if self.overflowed.is_set():
            self.queue = asyncio.Queue()
            self.overflowed.clear()

    def offer(self, order: Order) -> None:
        if self.overflowed.is_set():
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed.set()
            self.queue = asyncio.Queue()
            return
        self.queue.put_nowait(order)


class OrderFeed:
    """Orders as committed by this process, to the watches open in it."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def committed(self, order: Order) -> None:
        for subscription in self._subscriptions:
            if subscription.wants(order):
                subscription.offer(order)

    @contextmanager
    def subscribe(self, order_ids: Collection[str] = ()) -> Iterator[Subscription]:
        subscription = Subscription(order_ids)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
