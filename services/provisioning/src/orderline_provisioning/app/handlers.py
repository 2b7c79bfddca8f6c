"""Event handlers: an approved order becomes a provisioning job."""

from __future__ import annotations

from collections.abc import Callable

from orderline.events.v1 import order_events_pb2, provisioning_events_pb2
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain.job import Job
from orderline_runtime.clock import Clock
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.telemetry import inject_current
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


class OrderEvents:
    def __init__(self, clock: Clock, *, on_job_created: Callable[[], None]) -> None:
        self.clock = clock
        self.on_job_created = on_job_created

    def handlers(self) -> list[Handler]:
        return [Handler(order_events_pb2.OrderApproved, self.on_order_approved)]

    async def on_order_approved(
        self,
        uow: UnitOfWork[JobRepository],
        event: ReceivedEvent,
        payload: order_events_pb2.OrderApproved,
    ) -> None:
        """One job per order: a second approval of the same order (another event id) adds
        nothing. The job keeps the trace context of this span so its steps stay in the order's
        trace."""
        if not payload.order_id:
            raise PoisonMessage("order.approved without an order id")
        if not payload.device_id:
            raise PoisonMessage(f"order.approved of {payload.order_id} names no device")
        if await uow.repos.exists_for_order(payload.order_id):
            log.info("order already has a job; approval ignored", event_id=event.id)
            return
        job = Job(
            id=new_id(),
            order_id=payload.order_id,
            device_id=payload.device_id,
            business_type=payload.business_type,
            plan=payload.plan,
            locale=payload.locale,
            created_at=self.clock(),
            trace_headers=inject_current(),
        )
        await uow.repos.add(job)
        uow.emit(
            provisioning_events_pb2.JobStarted(
                job_id=job.id, order_id=job.order_id, device_id=job.device_id
            )
        )
        uow.on_commit(self.on_job_created)
        log.info("provisioning job created", job_id=job.id, device_id=job.device_id)
