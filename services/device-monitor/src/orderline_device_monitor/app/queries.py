"""Health questions: a device's health, whether it is fit to be worked on, its alarms."""

from __future__ import annotations

from dataclasses import dataclass

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.records import AlarmFilter, AlarmRecord
from orderline_device_monitor.domain.devices import health_of
from orderline_device_monitor.domain.health import (
    DeviceState,
    Fitness,
    HealthView,
    fitness,
)
from orderline_device_monitor.domain.rules import RuleSet
from orderline_runtime.clock import Clock
from orderline_runtime.errors import NotFound
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


@dataclass(frozen=True)
class AlarmPage:
    alarms: list[AlarmRecord]
    # The id to continue after (exclusive), when there is more.
    next_before_id: str | None


class DeviceHealthQueries:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DeviceRepository],
        book: HealthBook,
        clock: Clock,
        rules: RuleSet,
    ) -> None:
        self.uow = uow
        self.book = book
        self.rules = rules
        self.clock = clock

    async def health(self, device_id: str) -> HealthView:
        """NOT_FOUND for a device that never sent telemetry."""
        await self.book.wait_ready()
        await self.book.partitions.check_owned(self.uow, device_id)
        state = self.book.get(device_id)
        if state is None:
            raise NotFound("device", device_id)
        return health_of(state, now=self.clock(), rules=self.rules)

    async def check_fitness(self, device_id: str, order_id: str, checked_by: str) -> Fitness:
        """The answer, recorded with its order as an audit row before it is given.

        A device that never sent telemetry is UNKNOWN here (not NOT_FOUND, unlike `health`):
        at start-up an order may reach its pre-checks before the device's first sample, and
        the caller waits for telemetry on UNKNOWN rather than giving up."""
        await self.book.wait_ready()
        await self.book.partitions.check_owned(self.uow, device_id)
        state = self.book.get(device_id) or DeviceState(device_id)
        result = fitness(health_of(state, now=self.clock(), rules=self.rules))
        async with self.uow() as uow:
            await uow.repos.record_fitness_check(
                check_id=new_id(),
                device_id=device_id,
                order_id=order_id or None,
                fit=result.fit,
                state=result.health.state.name,
                reasons=result.reasons,
                alarm_id=result.alarm_id or None,
                checked_by=checked_by,
                checked_at=self.clock(),
            )
        log.info(
            "fitness checked",
            device_id=device_id,
            order_id=order_id,
            fit=result.fit,
            reasons=list(result.reasons),
        )
        return result

    async def list_alarms(
        self, *, where: AlarmFilter, before_id: str | None, limit: int
    ) -> AlarmPage:
        async with self.uow(read_only=True) as uow:
            rows = await uow.repos.list_alarms(before_id=before_id, limit=limit + 1, where=where)
        more = len(rows) > limit
        page = rows[:limit]
        return AlarmPage(alarms=page, next_before_id=page[-1].id if more and page else None)
