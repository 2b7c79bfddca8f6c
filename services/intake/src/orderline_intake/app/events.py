"""Intake follows the order through downstream events: milestones, hold, failure, archive."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orderline.events.v1 import archive_events_pb2, provisioning_events_pb2
from orderline_intake.app.orders import OrderApp
from orderline_intake.domain.states import InvalidTransition, Trigger
from orderline_runtime.errors import FailedPrecondition, PoisonMessage, PreconditionViolation
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent

P = provisioning_events_pb2

# provisioning event type -> (payload, milestone)
MILESTONE_EVENTS: dict[str, tuple[Any, str]] = {
    "provisioning.prechecks_passed": (P.PrechecksPassed, "prechecks_passed"),
    "provisioning.device_configured": (P.DeviceConfigured, "device_configured"),
    "provisioning.tests_passed": (P.TestsPassed, "tests_passed"),
    "provisioning.service_activated": (P.ServiceActivated, "service_activated"),
    "provisioning.voucher_issued": (P.VoucherIssued, "voucher_issued"),
    "provisioning.customer_notified": (P.CustomerNotified, "customer_notified"),
}


class OrderEventHandlers:
    def __init__(self, app: OrderApp) -> None:
        self.app = app

    def provisioning_handlers(self) -> list[Handler]:
        handlers = [
            Handler(event_type, payload_type, self._milestone(milestone))
            for event_type, (payload_type, milestone) in MILESTONE_EVENTS.items()
        ]
        handlers.append(Handler("provisioning.job_held", P.JobHeld, self.on_job_held))
        handlers.append(Handler("provisioning.job_failed", P.JobFailed, self.on_job_failed))
        return handlers

    def archive_handlers(self) -> list[Handler]:
        return [
            Handler(
                "archive.dossier_sealed", archive_events_pb2.DossierSealed, self.on_dossier_sealed
            )
        ]

    def _milestone(self, milestone: str) -> Any:
        async def handle(session: AsyncSession, event: ReceivedEvent, payload: Any) -> None:
            fields = {}
            if milestone == "voucher_issued":
                fields["voucher_id"] = payload.voucher_id
            await self.app.reach_milestone(session, _order_id(payload), milestone, **fields)

        return handle

    async def on_job_held(
        self, session: AsyncSession, event: ReceivedEvent, payload: P.JobHeld
    ) -> None:
        await self._transition(
            session, payload.order_id, Trigger.HOLD, payload.reason_code, payload.alarm_id
        )

    async def on_job_failed(
        self, session: AsyncSession, event: ReceivedEvent, payload: P.JobFailed
    ) -> None:
        await self._transition(session, payload.order_id, Trigger.FAIL, payload.reason_code)

    async def on_dossier_sealed(
        self, session: AsyncSession, event: ReceivedEvent, payload: archive_events_pb2.DossierSealed
    ) -> None:
        await self.app.reach_milestone(
            session, _order_id(payload), "dossier_archived", dossier_id=payload.dossier_id
        )

    async def _transition(
        self, session: AsyncSession, order_id: str, trigger: Trigger, reason: str, alarm: str = ""
    ) -> None:
        try:
            await self.app.transition(
                session,
                _order_id_str(order_id),
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
    return _order_id_str(payload.order_id)


def _order_id_str(order_id: str) -> str:
    if not order_id:
        raise PoisonMessage("event payload has no order_id")
    return order_id
