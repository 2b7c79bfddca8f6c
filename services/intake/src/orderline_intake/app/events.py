"""Intake follows the order through downstream events: milestones, hold, failure, archive,
and provisioning's answers to a cancellation."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from google.protobuf.message import Message

from orderline.events.v1 import archive_events_pb2, provisioning_events_pb2
from orderline_intake.app.cancellations import CancellationApp
from orderline_intake.app.orders import OrderApp
from orderline_intake.app.ports import OrderRepository
from orderline_intake.domain.communication import (
    Channel,
    Communication,
    Direction,
    Notification,
    call_channel,
    confirmed_text,
    feedback_text,
    not_reached_text,
    notification_channel,
)
from orderline_intake.domain.states import InvalidTransition, Trigger
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PoisonMessage,
    PreconditionViolation,
)
from orderline_runtime.messaging.consumer import Handler, HandlerFn
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.unit_of_work import UnitOfWork

P = provisioning_events_pb2
Uow = UnitOfWork[OrderRepository]

PROVISIONING = "provisioning"
# provisioning.job_held's reason when it gave up reaching the customer: the clerk's to call.
CUSTOMER_NOT_REACHED = "CUSTOMER_NOT_REACHED"

# provisioning payload -> the order's milestone it marks
MILESTONE_EVENTS: dict[type[Message], str] = {
    P.PrechecksPassed: "prechecks_passed",
    P.DeviceConfigured: "device_configured",
    P.TestsPassed: "tests_passed",
    P.ServiceActivated: "service_activated",
    P.VoucherIssued: "voucher_issued",
    P.CustomerNotified: "customer_notified",
}


class OrderEventHandlers:
    def __init__(self, app: OrderApp) -> None:
        self.app = app
        self.cancellations = CancellationApp(app)

    def handlers(self) -> list[Handler]:
        return [
            *(Handler(payload, self._milestone(m)) for payload, m in MILESTONE_EVENTS.items()),
            Handler(P.JobHeld, self.on_job_held),
            Handler(P.JobFailed, self.on_job_failed),
            Handler(archive_events_pb2.DossierSealed, self.on_dossier_sealed),
            Handler(P.CancellationAccepted, self.on_cancellation_accepted),
            Handler(P.CancellationCompleted, self.on_cancellation_completed),
            Handler(P.CancellationDeclined, self.on_cancellation_declined),
            Handler(P.ActivationConfirmed, self.on_activation_confirmed),
            Handler(P.FeedbackRecorded, self.on_feedback_recorded),
        ]

    def _milestone(self, milestone: str) -> HandlerFn:
        async def handle(uow: Uow, event: ReceivedEvent, payload: Any) -> None:
            fields = {}
            notification = None
            if isinstance(payload, P.VoucherIssued):
                fields["voucher_id"] = payload.voucher_id
            elif isinstance(payload, P.CustomerNotified):
                # Logged in the order's communication log in this same unit of work.
                notification = Notification(payload.channel, payload.delivery_id)
            await self.app.reach_milestone(
                uow, _order_id(payload), milestone, notification, **fields
            )

        return handle

    async def on_job_held(self, uow: Uow, event: ReceivedEvent, payload: P.JobHeld) -> None:
        order_id = _order_id(payload)
        await self._transition(uow, order_id, Trigger.HOLD, payload.reason_code, payload.alarm_id)
        if payload.reason_code == CUSTOMER_NOT_REACHED:
            # The clerk's task, in the order's log, in the hold's unit of work.
            await self._log(
                uow,
                order_id,
                notification_channel(payload.channel),
                Direction.OUTBOUND,
                PROVISIONING,
                event,
                not_reached_text(payload.channel, payload.attempts),
            )

    async def on_activation_confirmed(
        self, uow: Uow, event: ReceivedEvent, payload: P.ActivationConfirmed
    ) -> None:
        await self._log(
            uow,
            _order_id(payload),
            call_channel(payload.channel),
            Direction.INBOUND,
            payload.confirmed_by or PROVISIONING,
            event,
            confirmed_text(),
        )

    async def on_feedback_recorded(
        self, uow: Uow, event: ReceivedEvent, payload: P.FeedbackRecorded
    ) -> None:
        await self._log(
            uow,
            _order_id(payload),
            call_channel(payload.channel),
            Direction.INBOUND,
            payload.recorded_by or PROVISIONING,
            event,
            feedback_text(payload.score, payload.comment),
        )

    async def _log(
        self,
        uow: Uow,
        order_id: str,
        channel: Channel,
        direction: Direction,
        actor: str,
        event: ReceivedEvent,
        text: str,
    ) -> None:
        """An entry in the order's communication log, at the event's time; keyed by the event
        id, so a redelivery that got past the inbox adds nothing."""
        if await uow.repos.business_type_of(order_id) is None:
            raise NotFound("order", order_id)
        at = event.envelope.time.ToDatetime(tzinfo=UTC) if event.envelope.HasField("time") else None
        await uow.repos.add_communication(
            Communication(
                event.id, order_id, channel, direction, actor, at or self.app.clock(), text
            )
        )

    async def on_job_failed(self, uow: Uow, event: ReceivedEvent, payload: P.JobFailed) -> None:
        await self._transition(uow, _order_id(payload), Trigger.FAIL, payload.reason_code)

    async def on_dossier_sealed(
        self, uow: Uow, event: ReceivedEvent, payload: archive_events_pb2.DossierSealed
    ) -> None:
        await self.app.reach_milestone(
            uow, _order_id(payload), "dossier_archived", dossier_id=payload.dossier_id
        )

    async def on_cancellation_accepted(
        self, uow: Uow, event: ReceivedEvent, payload: P.CancellationAccepted
    ) -> None:
        await self.cancellations.accepted(uow, _order_id(payload), _cancellation_id(payload))

    async def on_cancellation_completed(
        self, uow: Uow, event: ReceivedEvent, payload: P.CancellationCompleted
    ) -> None:
        await self.cancellations.completed(
            uow,
            _order_id(payload),
            _cancellation_id(payload),
            payload.compensation,
            payload.rolled_back_to if payload.rolled_back else None,
        )

    async def on_cancellation_declined(
        self, uow: Uow, event: ReceivedEvent, payload: P.CancellationDeclined
    ) -> None:
        await self.cancellations.declined(
            uow, _order_id(payload), _cancellation_id(payload), payload.reason_code
        )

    async def _transition(
        self, uow: Uow, order_id: str, trigger: Trigger, reason: str, alarm: str = ""
    ) -> None:
        try:
            await self.app.transition(
                uow,
                order_id,
                trigger,
                actor="provisioning",
                reason_code=reason or trigger.value.upper(),
                alarm_id=alarm,
            )
        except InvalidTransition as exc:
            # Visible in the dead-letter stream rather than silently ignored.
            raise FailedPrecondition(
                str(exc),
                reason="INVALID_TRANSITION",
                violations=[PreconditionViolation("STATE", order_id, str(exc))],
            ) from exc


def _order_id(payload: Any) -> str:
    if not payload.order_id:
        raise PoisonMessage("event payload has no order_id")
    return str(payload.order_id)


def _cancellation_id(payload: Any) -> str:
    if not payload.cancellation_id:
        raise PoisonMessage("event payload has no cancellation_id")
    return str(payload.cancellation_id)
