"""Read models for the RPCs: jobs and vouchers, each read in a read-only unit of work."""

from __future__ import annotations

from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState
from orderline_provisioning.domain.voucher import Voucher
from orderline_runtime.errors import NotFound
from orderline_runtime.unit_of_work import UnitOfWorkFactory


class JobQueries:
    def __init__(self, uow: UnitOfWorkFactory[JobRepository]) -> None:
        self.uow = uow

    async def job(self, *, job_id: str = "", order_id: str = "") -> Job:
        async with self.uow(read_only=True) as uow:
            if job_id:
                job = await uow.repos.get(job_id)
            else:
                job = await uow.repos.get_by_order(order_id)
        if job is None:
            raise NotFound("job", job_id or f"order {order_id}")
        return job

    async def jobs(self, *, state: JobState | None, after_id: str, limit: int) -> list[Job]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.page(state=state, after_id=after_id, limit=limit)

    async def voucher(self, voucher_id: str) -> Voucher | None:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.get_voucher(voucher_id)

    async def verify_voucher(self, voucher_id: str, order_id: str) -> tuple[bool, str]:
        voucher = await self.voucher(voucher_id)
        if voucher is None:
            return False, "VOUCHER_NOT_FOUND"
        return voucher.verify(order_id)
