"""Projects every event into the reporting tables, in the consumer's transaction.

Every event counts once by type (the runtime's inbox makes a redelivery a no-op). Order events
also move the order's row: its business type, and its state by the rule in
domain/projection.py, so the result does not depend on arrival order. `archive.dossier_sealed`
records the dossier. Provisioning and device events are counted only, for now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from orderline.events.v1 import (
    archive_events_pb2,
    device_events_pb2,
    order_events_pb2,
    provisioning_events_pb2,
)
from orderline_reporting.adapters.repository import ProjectionRepository
from orderline_reporting.domain import states
from orderline_reporting.domain.projection import StateObservation, prevails
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent

OE = order_events_pb2
P = provisioning_events_pb2
D = device_events_pb2

# The events of docs/architecture.md that reporting consumes, by stream.
PROVISIONING_EVENTS: dict[str, type[Message]] = {
    "provisioning.job_started": P.JobStarted,
    "provisioning.prechecks_passed": P.PrechecksPassed,
    "provisioning.device_configured": P.DeviceConfigured,
    "provisioning.tests_passed": P.TestsPassed,
    "provisioning.service_activated": P.ServiceActivated,
    "provisioning.voucher_issued": P.VoucherIssued,
    "provisioning.customer_notified": P.CustomerNotified,
    "provisioning.job_held": P.JobHeld,
    "provisioning.job_failed": P.JobFailed,
}
DEVICE_EVENTS: dict[str, type[Message]] = {
    "device.health_changed": D.DeviceHealthChanged,
    "device.alarm_raised": D.AlarmRaised,
    "device.alarm_cleared": D.AlarmCleared,
}


class OrderPayload(Protocol):
    """What every order.* payload carries."""

    order_id: str
    business_type: str


class Projector:
    def order_handlers(self) -> list[Handler]:
        return [
            Handler("order.created", OE.OrderCreated, self.on_order_created),
            Handler("order.state_changed", OE.OrderStateChanged, self.on_order_state_changed),
            Handler("order.approved", OE.OrderApproved, self.on_order_approved),
            Handler("order.completed", OE.OrderCompleted, self.on_order_completed),
        ]

    def provisioning_handlers(self) -> list[Handler]:
        return [Handler(t, cls, self.on_counted) for t, cls in PROVISIONING_EVENTS.items()]

    def device_handlers(self) -> list[Handler]:
        return [Handler(t, cls, self.on_counted) for t, cls in DEVICE_EVENTS.items()]

    def archive_handlers(self) -> list[Handler]:
        return [
            Handler(
                "archive.dossier_sealed", archive_events_pb2.DossierSealed, self.on_dossier_sealed
            )
        ]

    # --- handlers -------------------------------------------------------------------------

    async def on_order_created(
        self, session: AsyncSession, event: ReceivedEvent, payload: OE.OrderCreated
    ) -> None:
        await self._observe(session, event, payload, states.ACKNOWLEDGED)

    async def on_order_state_changed(
        self, session: AsyncSession, event: ReceivedEvent, payload: OE.OrderStateChanged
    ) -> None:
        try:
            state = states.tmf_state(payload.to_state)
        except states.UnknownState as exc:
            raise PoisonMessage(f"order.state_changed: {exc}") from None
        await self._observe(session, event, payload, state)

    async def on_order_approved(
        self, session: AsyncSession, event: ReceivedEvent, payload: OE.OrderApproved
    ) -> None:
        await self._observe(session, event, payload, states.IN_PROGRESS)

    async def on_order_completed(
        self, session: AsyncSession, event: ReceivedEvent, payload: OE.OrderCompleted
    ) -> None:
        await self._observe(session, event, payload, states.COMPLETED)

    async def on_dossier_sealed(
        self, session: AsyncSession, event: ReceivedEvent, payload: archive_events_pb2.DossierSealed
    ) -> None:
        if not payload.dossier_id:
            raise PoisonMessage("archive.dossier_sealed without a dossier id")
        repo = ProjectionRepository(session)
        await repo.add_sealed_dossier(
            payload.dossier_id, payload.order_id or event.order_id, payload.sequence
        )
        await repo.count_event(event.event_type)

    async def on_counted(self, session: AsyncSession, event: ReceivedEvent, payload: Any) -> None:
        await ProjectionRepository(session).count_event(event.event_type)

    async def _observe(
        self,
        session: AsyncSession,
        event: ReceivedEvent,
        payload: OrderPayload,
        state: str,
    ) -> None:
        business_type = payload.business_type
        order_id = payload.order_id or event.order_id
        if not order_id:
            raise PoisonMessage(f"{event.event_type} without an order id")
        repo = ProjectionRepository(session)
        known_type, current = await repo.lock_order(order_id)
        observation = StateObservation(state, event_time(event))
        await repo.update_order(
            order_id,
            business_type=business_type if business_type and not known_type else None,
            observation=observation if prevails(current, observation) else None,
        )
        await repo.count_event(event.event_type)


def event_time(event: ReceivedEvent) -> datetime:
    """When the producer recorded the event; an envelope without a time sorts first."""
    envelope = event.envelope
    if not envelope.HasField("time"):
        return datetime.fromtimestamp(0, UTC)
    return envelope.time.ToDatetime(tzinfo=UTC)
