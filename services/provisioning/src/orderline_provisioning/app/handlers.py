"""Event handlers: an approved order becomes a provisioning job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from orderline.events.v1 import order_events_pb2, provisioning_events_pb2
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.app.steps import utcnow
from orderline_provisioning.domain.job import Job
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.messaging.outbox import Outbox
from orderline_runtime.telemetry import inject_current

log = get_logger(__name__)


class OrderEvents:
    def __init__(
        self, outbox: Outbox, *, is_postgres: bool, on_job_created: Callable[[], None]
    ) -> None:
        self.outbox = outbox
        self.is_postgres = is_postgres
        self.on_job_created = on_job_created

    async def on_order_approved(
        self,
        session: AsyncSession,
        event: ReceivedEvent,
        payload: order_events_pb2.OrderApproved,
    ) -> None:
        """One job per order: a second approval of the same order (another event id) adds
        nothing. The job keeps the trace context of this span so its steps stay in the order's
        trace."""
        order_id = payload.order_id or event.order_id
        if not order_id:
            raise PoisonMessage("order.approved without an order id")
        if event.order_id and payload.order_id and event.order_id != payload.order_id:
            raise PoisonMessage(
                f"envelope order {event.order_id!r} differs from payload order {payload.order_id!r}"
            )
        if not payload.device_id:
            raise PoisonMessage(f"order.approved of {order_id} names no device")
        repo = JobRepository(session, is_postgres=self.is_postgres)
        if await repo.exists_for_order(order_id):
            log.info("order already has a job; approval ignored", event_id=event.id)
            return
        job = Job(
            id=new_id(),
            order_id=order_id,
            device_id=payload.device_id,
            business_type=payload.business_type,
            plan=payload.plan,
            locale=payload.locale,
            created_at=utcnow(),
            trace_headers=inject_current(),
        )
        await repo.add(job)
        await self.outbox.add(
            session,
            "provisioning.job_started",
            provisioning_events_pb2.JobStarted(
                job_id=job.id, order_id=order_id, device_id=job.device_id
            ),
            order_id=order_id,
            device_id=job.device_id,
        )
        sa_event.listen(session.sync_session, "after_commit", self._committed, once=True)
        log.info("provisioning job created", job_id=job.id, device_id=job.device_id)

    def _committed(self, _session: Any) -> None:
        self.on_job_created()
