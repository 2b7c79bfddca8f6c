"""Shared by reporting's integration tests: events published as their producers' relays would
(`Producer`, `order_run`), known orders, and the reading of replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest_asyncio
from google.protobuf.message import Message
from nats.aio.client import Client
from nats.js import JetStreamContext

from orderline.events.v1 import envelope_pb2, order_events_pb2, provisioning_events_pb2
from orderline.order.v1 import order_pb2
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_devtools.local import NatsServer
from orderline_devtools.waiting import eventually
from orderline_runtime.messaging.envelope import build_envelope

OE = order_events_pb2
PE = provisioning_events_pb2
S = order_pb2


def auth(role: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer dev-{role}"),)


MANAGER = auth("manager")


class Producer:
    """Publishes events as their owning service's outbox relay would; `now` is the producer's
    clock, so a test can record events in one order and deliver them in another."""

    def __init__(self, nc: Client) -> None:
        self.js: JetStreamContext = nc.jetstream()
        self.clock = datetime(2026, 5, 9, 8, 0, tzinfo=UTC)
        self.published = 0

    def record(
        self, event_type: str, payload: Message, *, order_id: str = "", device_id: str = ""
    ) -> envelope_pb2.Envelope:
        """Builds the envelope as the producer writes it to its outbox, a moment after the last."""
        self.clock += timedelta(milliseconds=1)
        producer = event_type.split(".", 1)[0]
        producer = {"order": "intake", "device": "device-monitor"}.get(producer, producer)
        return build_envelope(
            event_type,
            payload,
            producer=producer,
            order_id=order_id,
            device_id=device_id,
            now=self.clock,
        )

    async def publish(self, *envelopes: envelope_pb2.Envelope) -> None:
        for env in envelopes:
            await self.js.publish(
                f"orderline.{env.type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
            )
            self.published += 1


@pytest_asyncio.fixture
async def producer(nats_server: NatsServer) -> AsyncIterator[Producer]:
    nc = await nats.connect(nats_server.url)
    yield Producer(nc)
    await nc.drain()


def order_run(
    p: Producer, order_id: str, business_type: str, path: list[int]
) -> list[envelope_pb2.Envelope]:
    """The order events intake records for an order that is created and then goes through
    `path` (OrderState values after acknowledged), in the order intake records them."""
    envs = [
        p.record(
            "order.created",
            OE.OrderCreated(order_id=order_id, business_type=business_type, device_id="CPE-1"),
            order_id=order_id,
        )
    ]
    previous: int = S.ORDER_STATE_ACKNOWLEDGED
    for state in path:
        envs.append(
            p.record(
                "order.state_changed",
                OE.OrderStateChanged(
                    order_id=order_id,
                    business_type=business_type,
                    from_state=previous,  # type: ignore[arg-type]
                    to_state=state,  # type: ignore[arg-type]
                    actor="test",
                ),
                order_id=order_id,
            )
        )
        if state == S.ORDER_STATE_IN_PROGRESS and previous == S.ORDER_STATE_ACKNOWLEDGED:
            envs.append(
                p.record(
                    "order.approved",
                    OE.OrderApproved(order_id=order_id, business_type=business_type),
                    order_id=order_id,
                )
            )
        if state == S.ORDER_STATE_COMPLETED:
            envs.append(
                p.record(
                    "order.completed",
                    OE.OrderCompleted(order_id=order_id, business_type=business_type),
                    order_id=order_id,
                )
            )
        previous = state
    return envs


async def report_after(
    stub: reporting_pb2_grpc.ReportingServiceStub, events: int
) -> reporting_pb2.GetOrderReportResponse:
    """The report once `events` events have been projected."""

    async def get() -> reporting_pb2.GetOrderReportResponse:
        reply: reporting_pb2.GetOrderReportResponse = await stub.GetOrderReport(
            reporting_pb2.GetOrderReportRequest(), metadata=MANAGER
        )
        return reply

    return await eventually(get, lambda r: r.events_projected >= events)


def by_state(reply: reporting_pb2.GetOrderReportResponse) -> dict[str, int]:
    return {c.state: c.count for c in reply.by_state if c.count}


def by_type(reply: reporting_pb2.GetOrderReportResponse) -> dict[str, int]:
    return {c.business_type: c.count for c in reply.by_business_type}


IP, HELD, DONE, REJ = (
    S.ORDER_STATE_IN_PROGRESS,
    S.ORDER_STATE_HELD,
    S.ORDER_STATE_COMPLETED,
    S.ORDER_STATE_REJECTED,
)

# order id -> (business type, path after acknowledged, expected TMF641 state)
ORDERS: dict[str, tuple[str, list[int], str]] = {
    "ord-1": ("broadband_install", [IP, DONE], "completed"),
    "ord-2": ("broadband_install", [IP, DONE], "completed"),
    "ord-3": ("iptv", [IP, HELD], "held"),
    "ord-4": ("iptv", [IP, HELD, IP, HELD, IP], "inProgress"),
    "ord-5": ("fixed_line", [REJ], "rejected"),
    "ord-6": ("fixed_line", [], "acknowledged"),
}


def positions(reply: Any) -> dict[str, tuple[int, int]]:
    return {p.stream: (p.sequence, p.events_applied) for p in reply.position}
