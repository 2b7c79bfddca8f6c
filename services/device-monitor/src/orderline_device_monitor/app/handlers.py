"""Event handlers: they run inside the consumer's transaction, with its inbox check."""

from __future__ import annotations

from datetime import UTC

from orderline.events.v1 import order_events_pb2, provisioning_events_pb2
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.domain.health import device_id_problem
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


async def on_job_started(
    uow: UnitOfWork[DeviceRepository],
    event: ReceivedEvent,
    payload: provisioning_events_pb2.JobStarted,
) -> None:
    """provisioning.job_started: the device is in use for the order from now on, so its next
    alarms and anomaly records name the order. The latest job started on a device wins, by the
    event's time, so a late redelivery of an older job does not take the device back."""
    device_id = payload.device_id or event.envelope.device_id
    if not device_id:
        log.info("job started without a device; nothing to record", job_id=payload.job_id)
        return
    problem = device_id_problem(device_id)
    if problem:
        raise PoisonMessage(f"job_started names device {device_id[:80]!r}: {problem}")
    order_id = payload.order_id
    if not order_id or not payload.job_id:
        raise PoisonMessage("job_started lacks its order id or job id")
    started_at = (
        event.envelope.time.ToDatetime(tzinfo=UTC) if event.envelope.HasField("time") else None
    )
    if started_at is None:
        raise PoisonMessage("job_started envelope has no time")
    await uow.repos.record_usage(
        device_id=device_id,
        order_id=order_id,
        job_id=payload.job_id,
        started_at=started_at,
        event_id=event.id,
    )
    log.info("device in use for order", device_id=device_id, order_id=order_id)


async def on_case_opened(
    uow: UnitOfWork[DeviceRepository],
    event: ReceivedEvent,
    payload: order_events_pb2.CaseOpened,
) -> None:
    """order.case_opened: a follow-up reported a problem. One about the device is kept for the
    ticket desk of the replica evaluating the device (app/ticket_requests.py), which opens a
    maintenance ticket for it or adds it to the device's open ticket; this consumer may run on
    any replica."""
    if not payload.device_problem:
        return
    device_id = payload.device_id or event.envelope.device_id
    if not device_id:
        log.info("device problem on an order without a device", case_id=payload.case_id)
        return
    problem = device_id_problem(device_id)
    if problem:
        raise PoisonMessage(f"case_opened names device {device_id[:80]!r}: {problem}")
    if not payload.case_id or not payload.order_id:
        raise PoisonMessage("case_opened lacks its case id or order id")
    if not event.envelope.HasField("time"):
        raise PoisonMessage("case_opened envelope has no time")
    await uow.repos.request_ticket(
        case_id=payload.case_id,
        device_id=device_id,
        order_id=payload.order_id,
        by=payload.opened_by or "intake",
        at=event.envelope.time.ToDatetime(tzinfo=UTC),
    )
    log.info("device problem reported at a follow-up", device_id=device_id, case_id=payload.case_id)


HANDLERS = [
    Handler(provisioning_events_pb2.JobStarted, on_job_started),
    Handler(order_events_pb2.CaseOpened, on_case_opened),
]
