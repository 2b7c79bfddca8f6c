"""Projects every event into the reporting tables, in the consumer's transaction.

Every event counts once by type (the runtime's inbox makes a redelivery a no-op). Order events
also move the order's row: its business type, and its state by the rule in
domain/projection.py, so the result does not depend on arrival order. `archive.dossier_sealed`
records the dossier. Every event a management report reads also becomes one report fact
(domain/facts.py), gathered and written in one statement per transaction at commit.

Every applied event also advances the digest's position in its stream (the event's
`stream_sequence`, domain/digest.py); projected rows carry producer times only, never the
wall clock, so a replay writes the same rows (docs/reporting.md).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import Message

from orderline.events.v1 import archive_events_pb2, order_events_pb2
from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.domain import facts, states
from orderline_reporting.domain.projection import StateObservation, prevails
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.consumer import Handler, HandlerFn
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.timestamps import datetime_of
from orderline_runtime.unit_of_work import UnitOfWork

OE = order_events_pb2
Uow = UnitOfWork[ProjectionRepository]


class OrderPayload(Protocol):
    """What every order.* payload carries."""

    order_id: str
    business_type: str


class Projector:
    def handlers(self) -> list[Handler]:
        """Every event in the catalogue that names reporting as a consumer: order events move
        the order's row, a sealed dossier is recorded, the rest are counted."""
        special: dict[type[Message], HandlerFn] = {
            OE.OrderCreated: self.on_order_created,
            OE.OrderStateChanged: self.on_order_state_changed,
            OE.OrderApproved: self.on_order_approved,
            OE.OrderCompleted: self.on_order_completed,
            archive_events_pb2.DossierSealed: self.on_dossier_sealed,
        }
        return [
            Handler(
                spec.payload_type,
                _positioned(spec.stream.name, special.get(spec.payload_type, self.on_counted)),
            )
            for spec in catalogue().consumed_by("reporting")
        ]

    # --- handlers -------------------------------------------------------------------------

    async def on_order_created(
        self, uow: Uow, event: ReceivedEvent, payload: OE.OrderCreated
    ) -> None:
        await self._observe(uow, event, payload, states.ACKNOWLEDGED)

    async def on_order_state_changed(
        self, uow: Uow, event: ReceivedEvent, payload: OE.OrderStateChanged
    ) -> None:
        try:
            state = states.tmf_state(payload.to_state)
        except states.UnknownState as exc:
            raise PoisonMessage(f"order.state_changed: {exc}") from None
        await self._observe(uow, event, payload, state)

    async def on_order_approved(
        self, uow: Uow, event: ReceivedEvent, payload: OE.OrderApproved
    ) -> None:
        await self._observe(uow, event, payload, states.IN_PROGRESS)

    async def on_order_completed(
        self, uow: Uow, event: ReceivedEvent, payload: OE.OrderCompleted
    ) -> None:
        await self._observe(uow, event, payload, states.COMPLETED)

    async def on_dossier_sealed(
        self, uow: Uow, event: ReceivedEvent, payload: archive_events_pb2.DossierSealed
    ) -> None:
        if not payload.dossier_id:
            raise PoisonMessage("archive.dossier_sealed without a dossier id")
        repo = uow.repos
        await repo.add_sealed_dossier(
            payload.dossier_id, payload.order_id, payload.sequence, event_time(event)
        )
        await repo.count_event(event.event_type)

    async def on_counted(self, uow: Uow, event: ReceivedEvent, payload: Any) -> None:
        await uow.repos.count_event(event.event_type)

    async def _observe(
        self,
        uow: Uow,
        event: ReceivedEvent,
        payload: OrderPayload,
        state: str,
    ) -> None:
        business_type = payload.business_type
        order_id = payload.order_id
        if not order_id:
            raise PoisonMessage(f"{event.event_type} without an order id")
        repo = uow.repos
        observation = StateObservation(state, event_time(event))
        locked = await repo.lock_order(order_id)
        if locked is None:
            if await repo.add_order(order_id, business_type, observation):
                await repo.count_event(event.event_type)
                return
            locked = await repo.lock_order(order_id)
            assert locked is not None  # another replica's insert, now committed and locked
        current = None
        if locked.state is not None and locked.state_at is not None:
            current = StateObservation(locked.state, locked.state_at)
        await repo.update_order(
            locked,
            business_type=business_type if business_type and not locked.business_type else None,
            observation=observation if prevails(current, observation) else None,
        )
        await repo.count_event(event.event_type)


def _positioned(stream: str, fn: HandlerFn) -> HandlerFn:
    """`fn`, then the event's report fact gathered (no statement: the repository writes a
    transaction's facts at commit) and its stream sequence noted for the digest's position (0
    when the caller did not say: such an event still counts as applied), with its producer
    time for the checkpoint's hour."""

    @functools.wraps(fn)
    async def handle(uow: Uow, event: ReceivedEvent, payload: Any) -> None:
        await fn(uow, event, payload)
        at = event_time(event)
        fact = facts.extract(
            event.event_type,
            event.id,
            at,
            payload,
            order_id=event.order_id,
            device_id=event.envelope.device_id,
        )
        if fact is not None:
            uow.repos.add_fact(fact)
        uow.repos.applied(stream, event.stream_sequence, at)

    return handle


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time(event: ReceivedEvent) -> datetime:
    """When the producer recorded the event; an envelope without a time sorts first.

    What `Timestamp.ToDatetime(tzinfo=UTC)` gives, in two thirds of its time (an order event
    asks twice); an invalid Timestamp still goes to it, to fail as it did."""
    envelope = event.envelope
    if not envelope.HasField("time"):
        return _EPOCH
    return datetime_of(envelope.time)
