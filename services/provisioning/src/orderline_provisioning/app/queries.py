"""Read models for the RPCs: jobs and vouchers, each read in a read-only unit of work."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain.attestation import Verdict, VerificationKey, verify_envelope
from orderline_provisioning.domain.config import (
    ConfigHistoryEntry,
    ConfigOperation,
    ConfigRecord,
    history_entries,
)
from orderline_provisioning.domain.confirmation import Confirmation, Feedback
from orderline_provisioning.domain.job import Job, TestResult
from orderline_provisioning.domain.steps import JobState
from orderline_provisioning.domain.voucher import Voucher
from orderline_runtime.errors import NotFound
from orderline_runtime.unit_of_work import UnitOfWorkFactory

VOUCHER_NOT_FOUND = "VOUCHER_NOT_FOUND"
# A voucher issued before vouchers were signed (migration 0002): nothing to check it with.
UNSIGNED_VOUCHER = "UNSIGNED_VOUCHER"


class TrustedKeys(Protocol):
    """What verification needs of the voucher keys (app/voucher_keys.py)."""

    def trusted(self) -> Mapping[str, VerificationKey]: ...


class JobQueries:
    def __init__(self, uow: UnitOfWorkFactory[JobRepository], keys: TrustedKeys) -> None:
        self.uow = uow
        self.keys = keys

    async def job(self, *, job_id: str = "", order_id: str = "") -> tuple[Job, str]:
        """The job, and the id of the job it waits for (its device's holder) or ""."""
        async with self.uow(read_only=True) as uow:
            if job_id:
                job = await uow.repos.get(job_id)
            else:
                job = await uow.repos.get_by_order(order_id)
            if job is None:
                raise NotFound("job", job_id or f"order {order_id}")
            waiting = await uow.repos.waiting_for([job])
        return job, waiting.get(job.id, "")

    async def job_with_history(
        self, *, job_id: str = "", order_id: str = ""
    ) -> tuple[Job, str, list[TestResult], list[ConfigRecord]]:
        """The job as `job` gives it, with every test round and configuration change."""
        job, waiting, runs, configs, _, _ = await self.job_in_full(job_id=job_id, order_id=order_id)
        return job, waiting, runs, configs

    async def job_in_full(
        self, *, job_id: str = "", order_id: str = ""
    ) -> tuple[
        Job, str, list[TestResult], list[ConfigRecord], Confirmation | None, Feedback | None
    ]:
        """As `job_with_history`, with the customer's confirmation and feedback."""
        async with self.uow(read_only=True) as uow:
            if job_id:
                job = await uow.repos.get(job_id)
            else:
                job = await uow.repos.get_by_order(order_id)
            if job is None:
                raise NotFound("job", job_id or f"order {order_id}")
            waiting = await uow.repos.waiting_for([job])
            runs = await uow.repos.test_runs_of(job.id)
            configs = await uow.repos.configs_of_job(job.id)
            confirmation = await uow.repos.confirmation(job.order_id)
            feedback = await uow.repos.feedback(job.order_id)
        return job, waiting.get(job.id, ""), runs, configs, confirmation, feedback

    async def jobs(
        self, *, state: JobState | None, after_id: str, limit: int
    ) -> tuple[list[Job], dict[str, str]]:
        """A page of jobs, and for those waiting for their device the job holding it."""
        async with self.uow(read_only=True) as uow:
            page = await uow.repos.page(state=state, after_id=after_id, limit=limit)
            return page, await uow.repos.waiting_for(page)

    async def device_configurations(
        self, device_id: str, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[ConfigHistoryEntry]:
        """A page of the device's configuration history, newest first, each record with the
        rollback that undid it (read in the same transaction, wherever it falls in the pages)."""
        async with self.uow(read_only=True) as uow:
            page = await uow.repos.device_config_page(device_id, before=before, limit=limit)
            rollbacks = await uow.repos.rollbacks_on_device(
                device_id, [r.job_id for r in page if r.operation is not ConfigOperation.ROLLBACK]
            )
        return history_entries(page, rollbacks)

    async def voucher(self, voucher_id: str) -> Voucher | None:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.get_voucher(voucher_id)

    async def verify_voucher(self, voucher_id: str, order_id: str = "") -> Verdict:
        """The stored voucher's envelope checked as anyone would check it: signature by a
        trusted key, statement, and (when given) the order."""
        voucher = await self.voucher(voucher_id)
        if voucher is None:
            return Verdict(False, VOUCHER_NOT_FOUND, f"no voucher {voucher_id}")
        if not voucher.envelope:
            return Verdict(
                False, UNSIGNED_VOUCHER, "issued before vouchers were signed", voucher_id=voucher.id
            )
        return self.verify_envelope(voucher.envelope, order_id)

    def verify_envelope(self, envelope: bytes, order_id: str = "") -> Verdict:
        return verify_envelope(envelope, self.keys.trusted(), order_id=order_id)
