"""The fallout queue's use cases: list, retry, skip a test, roll back, abort
(domain/fallout.py says what each means).

Each action loads the job, decides in the domain, makes the device call it needs (a rollback)
outside any transaction, then writes the job only if it is still the one loaded (in fallout
since the same time, no worker on it, no cancellation since): otherwise ABORTED, try again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from orderline.events.v1 import provisioning_events_pb2 as ev
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.app.ports import PeerRejected, PeerUnavailable
from orderline_provisioning.app.steps import StepOutcome, StepRunner, tests_passed
from orderline_provisioning.domain import fallout
from orderline_provisioning.domain.job import Job
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    Conflict,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
    Unavailable,
)
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

NOT_IN_FALLOUT = "NOT_IN_FALLOUT"


def _not_in_fallout(exc: fallout.NotInFallout) -> FailedPrecondition:
    return FailedPrecondition(
        str(exc),
        reason=NOT_IN_FALLOUT,
        violations=[PreconditionViolation(NOT_IN_FALLOUT, exc.job.id, str(exc))],
    )


class FalloutDesk:
    def __init__(
        self,
        uow: UnitOfWorkFactory[JobRepository],
        runner: StepRunner,
        clock: Clock,
        *,
        on_runnable: Callable[[], None],
    ) -> None:
        self.uow = uow
        self.runner = runner
        self.clock = clock
        self.on_runnable = on_runnable

    async def list(self, *, after: tuple[datetime, str] | None, limit: int) -> list[Job]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.fallout_page(after=after, limit=limit)

    async def _load(self, job_id: str) -> Job:
        async with self.uow(read_only=True) as uow:
            job = await uow.repos.get(job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job

    async def _save(self, job: Job, loaded_at: datetime | None, out: StepOutcome) -> Job:
        async with self.uow() as uow:
            if not await uow.repos.save_fallout_action(job, loaded_at=loaded_at):
                raise Conflict(
                    f"job {job.id} changed while the action ran (another action, a "
                    "cancellation): read it again and retry",
                    reason="JOB_CHANGED",
                )
            if out.test_results is not None:
                await uow.repos.replace_test_results(job.id, out.test_results)
            await uow.repos.add_config_records(out.config_records)
            for payload in out.events:
                uow.emit(payload, order_id=job.order_id, device_id=job.device_id)
            if job.runnable:
                uow.on_commit(self.on_runnable)
        return job

    async def retry(self, job_id: str, actor: str) -> Job:
        job = await self._load(job_id)
        loaded_at = job.fallout_at
        try:
            fallout.retry(job, self.clock())
        except fallout.NotInFallout as exc:
            raise _not_in_fallout(exc) from None
        log.info("fallout: job retried", job_id=job.id, step=job.step.value, by=actor)
        return await self._save(job, loaded_at, StepOutcome())

    async def skip(self, job_id: str, kind: str, reason: str, actor: str) -> Job:
        job = await self._load(job_id)
        loaded_at = job.fallout_at
        try:
            done = fallout.skip(job, kind, reason, actor, self.clock())
        except fallout.NotInFallout as exc:
            raise _not_in_fallout(exc) from None
        except fallout.SameEngineer as exc:
            raise PermissionDenied(str(exc), reason="FOUR_EYES") from None
        out = StepOutcome()
        if done.tests_done:
            out.add(tests_passed(job))
        if done.awaiting_approval:
            log.info("fallout: skip asked", job_id=job.id, kind=kind, by=actor, reason=reason)
        else:
            log.info("fallout: test skipped", job_id=job.id, kind=kind, approved_by=actor)
        return await self._save(job, loaded_at, out)

    async def roll_back(self, job_id: str, actor: str) -> Job:
        job = await self._load(job_id)
        loaded_at = job.fallout_at
        try:
            fallout.require_fallout(job)
        except fallout.NotInFallout as exc:
            raise _not_in_fallout(exc) from None
        out = StepOutcome()
        if not job.rolled_back:
            record = await self._device_rollback(job, out)
            fallout.rolled_back(job, record, self.clock())
        log.info("fallout: job rolled back", job_id=job.id, to=job.rolled_back_to, by=actor)
        return await self._save(job, loaded_at, out)

    async def abort(self, job_id: str, reason: str, actor: str) -> Job:
        job = await self._load(job_id)
        loaded_at = job.fallout_at
        try:
            fallout.require_fallout(job)
        except fallout.NotInFallout as exc:
            raise _not_in_fallout(exc) from None
        out = StepOutcome()
        if job.touched_device and not job.rolled_back:
            fallout.rolled_back(job, await self._device_rollback(job, out), self.clock())
        fallout.abort(job, reason, actor, self.clock())
        out.add(
            ev.JobFailed(
                job_id=job.id,
                order_id=job.order_id,
                device_id=job.device_id,
                reason_code=job.reason,
                detail=job.detail,
            )
        )
        log.info("fallout: job aborted", job_id=job.id, by=actor, reason=reason)
        return await self._save(job, loaded_at, out)

    async def _device_rollback(self, job: Job, out: StepOutcome) -> int | None:
        try:
            record = await self.runner.roll_back(job, out)
        except PeerUnavailable as exc:
            raise Unavailable(f"the device agent did not answer the rollback: {exc}") from exc
        except PeerRejected as exc:
            raise FailedPrecondition(
                f"the device refused the rollback: {exc}",
                reason="ROLLBACK_REFUSED",
                violations=[PreconditionViolation("ROLLBACK_REFUSED", job.device_id, str(exc))],
            ) from exc
        return record.config_version if record is not None else None
