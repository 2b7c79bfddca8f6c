"""Background task on each replica: device problems reported at follow-ups become maintenance
tickets, for the devices the replica evaluates.

intake's `order.case_opened` (a trouble case about the device) is kept by the consumer as a
ticket request (app/handlers.py), on whichever replica took the event. The replica evaluating
the device's partition (app/ownership.py), which alone holds its health, opens a ticket for
each through the same ticket desk as `CreateTicket` (or adds the report to the device's open
ticket), marking the request taken in the ticket's own transaction: a crash in between leaves
it pending, and a second try adds nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.tickets import TicketDesk
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

TICK_SECONDS = 1.0
BATCH = 50


def description(case_id: str) -> str:
    """For the maintenance staff; the customer's words stay with intake's case."""
    return (
        f"回访中客户反映设备问题 (问题单 {case_id})，详情见受理系统 / "  # noqa: RUF001
        f"Device problem reported at a follow-up (trouble case {case_id}); details in intake"
    )


class TicketRequests:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        desk: TicketDesk,
        every_seconds: float = TICK_SECONDS,
    ) -> None:
        self.uow = uow
        self.book = book
        self.desk = desk
        self.every_seconds = every_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.book.ready.is_set():
                await self.take()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every_seconds)

    async def take(self) -> int:
        """Opens (or adds to) a ticket for each pending request; returns how many."""
        async with self.uow(read_only=True) as uow:
            pending = await uow.repos.pending_ticket_requests(BATCH)
        partitions = self.book.partitions
        if not partitions.all_owned:
            # Each replica takes the requests about the devices it evaluates.
            mine = []
            for request in pending:
                partition = await partitions.partition_of_device(self.uow, request.device_id)
                if partition in partitions.owned:
                    mine.append(request)
            pending = mine
        for request in pending:
            ticket, created = await self.desk.create(
                device_id=request.device_id,
                description=description(request.case_id),
                category=None,
                order_id=request.order_id,
                by=request.requested_by,
                case_id=request.case_id,
            )
            log.info(
                "ticket for a follow-up's device problem",
                ticket_id=ticket.id,
                created=created,
                case_id=request.case_id,
                device_id=request.device_id,
            )
        return len(pending)
