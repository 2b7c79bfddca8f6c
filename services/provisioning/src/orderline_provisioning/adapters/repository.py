"""Jobs, test results and vouchers in the service's database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update

from orderline_provisioning.adapters.tables import jobs, test_results, vouchers
from orderline_provisioning.domain.job import Job, TestResult
from orderline_provisioning.domain.steps import JobState, Step
from orderline_provisioning.domain.voucher import Voucher
from orderline_runtime.database import SqlConnection, dialect_of

# The statements of the hot path (the worker claims, loads and saves a job once per step),
# built once: building a statement costs more than running it (docs/performance.md).
_INSERT_JOB = insert(jobs)
_JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("key"))
_JOB_BY_ORDER = select(jobs).where(jobs.c.order_id == bindparam("key"))
# Any write of a job by the worker holding its lease (a save, a renewal, a release).
_SAVE_JOB = update(jobs).where(
    jobs.c.id == bindparam("key"), jobs.c.lease_owner == bindparam("owner")
)
_RESULTS_OF_ONE = (
    select(test_results)
    .where(test_results.c.job_id == bindparam("key"))
    .order_by(test_results.c.position)
)
_DELETE_RESULTS = delete(test_results).where(test_results.c.job_id == bindparam("key"))
_INSERT_RESULTS = insert(test_results)
_RUNNABLE = (
    select(jobs.c.id)
    .where(
        jobs.c.state == JobState.RUNNING.value,
        jobs.c.step != Step.DONE.value,
        jobs.c.next_attempt_at <= bindparam("now"),
        or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now")),
    )
    .order_by(jobs.c.next_attempt_at)
    .limit(1)
)
# Two replicas never take the same row; each skips what the other holds (PostgreSQL; SQLite's
# BEGIN IMMEDIATE already lets one writer in at a time).
_RUNNABLE_SKIP_LOCKED = _RUNNABLE.with_for_update(skip_locked=True)
_TAKE_LEASE = update(jobs).where(jobs.c.id == bindparam("key"))
_JOB_ID_OF_ORDER = select(jobs.c.id).where(jobs.c.order_id == bindparam("key"))
_INSERT_VOUCHER = insert(vouchers)
_VOUCHER_BY_ID = select(vouchers).where(vouchers.c.id == bindparam("key"))


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "device_id": job.device_id,
        "business_type": job.business_type,
        "plan": job.plan,
        "locale": job.locale,
        "state": job.state.value,
        "step": job.step.value,
        "reason": job.reason,
        "detail": job.detail,
        "alarm_id": job.alarm_id,
        "voucher_id": job.voucher_id,
        "config_version": job.config_version,
        "attempts": job.attempts,
        "step_attempts": job.step_attempts,
        "notify_failures": job.notify_failures,
        "delivery_id": job.delivery_id,
        "channel": job.channel,
        "updated_at": job.updated_at,
        "step_started_at": job.step_started_at,
        "next_attempt_at": job.next_attempt_at,
    }


class JobRepository:
    def __init__(self, session: SqlConnection) -> None:
        self.session = session

    # --- jobs -----------------------------------------------------------------------------

    async def add(self, job: Job) -> None:
        await self.session.execute(
            _INSERT_JOB,
            {
                "id": job.id,
                "order_id": job.order_id,
                "trace_headers": dict(job.trace_headers),
                "created_at": job.created_at,
                **_job_values(job),
            },
        )

    async def get(self, job_id: str) -> Job | None:
        return await self._load(_JOB_BY_ID, job_id)

    async def get_by_order(self, order_id: str) -> Job | None:
        return await self._load(_JOB_BY_ORDER, order_id)

    async def exists_for_order(self, order_id: str) -> bool:
        row = await self.session.execute(_JOB_ID_OF_ORDER, {"key": order_id})
        return row.first() is not None

    async def page(self, *, state: JobState | None, after_id: str, limit: int) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.id).limit(limit)
        if state is not None:
            stmt = stmt.where(jobs.c.state == state.value)
        if after_id:
            stmt = stmt.where(jobs.c.id > after_id)
        rows = (await self.session.execute(stmt)).mappings().all()
        results = await self._results_of([r["id"] for r in rows])
        return [_to_job(r, results.get(r["id"], [])) for r in rows]

    async def save(self, job: Job, *, lease_owner: str, keep_until: datetime | None = None) -> bool:
        """Writes the job and gives up the lease, or keeps it until `keep_until` (the worker
        goes on with the next step at once); False when the lease was lost meanwhile (another
        worker may have run the step: the caller must roll back)."""
        result = await self.session.execute(
            _SAVE_JOB,
            {
                "key": job.id,
                "owner": lease_owner,
                **_job_values(job),
                "lease_owner": lease_owner if keep_until else None,
                "lease_until": keep_until,
            },
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def replace_test_results(self, job_id: str, results: Sequence[TestResult]) -> None:
        await self.session.execute(_DELETE_RESULTS, {"key": job_id})
        if results:
            await self.session.execute(
                _INSERT_RESULTS,
                [
                    {
                        "job_id": job_id,
                        "kind": r.kind,
                        "position": i,
                        "passed": r.passed,
                        "detail": r.detail,
                    }
                    for i, r in enumerate(results)
                ],
            )

    # --- leases ---------------------------------------------------------------------------

    async def claim_next(self, owner: str, now: datetime, until: datetime) -> Job | None:
        """Takes the lease of the runnable job that has waited longest, if any."""
        stmt = _RUNNABLE_SKIP_LOCKED if dialect_of(self.session) == "postgresql" else _RUNNABLE
        job_id = (await self.session.execute(stmt, {"now": now})).scalar_one_or_none()
        if job_id is None:
            return None
        await self.session.execute(
            _TAKE_LEASE, {"key": job_id, "lease_owner": owner, "lease_until": until}
        )
        return await self.get(job_id)

    async def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        result = await self.session.execute(
            _SAVE_JOB, {"key": job_id, "owner": owner, "lease_until": until}
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def release_lease(self, job_id: str, owner: str) -> None:
        await self.session.execute(
            _SAVE_JOB, {"key": job_id, "owner": owner, "lease_owner": None, "lease_until": None}
        )

    async def release_orphaned_leases(self) -> int:
        """At a worker's start. On SQLite there is one worker per database, so any lease left is
        a dead process's and is released at once; on PostgreSQL replicas share the jobs and a
        dead one's leases lapse by time instead."""
        if dialect_of(self.session) != "sqlite":
            return 0
        result = await self.session.execute(
            update(jobs)
            .where(jobs.c.lease_owner.is_not(None))
            .values(lease_owner=None, lease_until=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- vouchers -------------------------------------------------------------------------

    async def add_voucher(self, voucher: Voucher) -> None:
        await self.session.execute(
            _INSERT_VOUCHER,
            {
                "id": voucher.id,
                "job_id": voucher.job_id,
                "order_id": voucher.order_id,
                "device_id": voucher.device_id,
                "business_type": voucher.business_type,
                "issued_at": voucher.issued_at,
                "texts": dict(voucher.texts),
                "envelope": voucher.envelope,
                "key_id": voucher.key_id,
            },
        )

    async def get_voucher(self, voucher_id: str) -> Voucher | None:
        row = (await self.session.execute(_VOUCHER_BY_ID, {"key": voucher_id})).mappings().first()
        if row is None:
            return None
        issued_at = row["issued_at"]
        assert issued_at is not None
        return Voucher(
            id=row["id"],
            job_id=row["job_id"],
            order_id=row["order_id"],
            device_id=row["device_id"],
            business_type=row["business_type"],
            issued_at=issued_at,
            texts=dict(row["texts"] or {}),
            envelope=bytes(row["envelope"] or b""),
            key_id=row["key_id"] or "",
        )

    # --- helpers --------------------------------------------------------------------------

    async def _load(self, stmt: Any, key: str) -> Job | None:
        row = (await self.session.execute(stmt, {"key": key})).mappings().first()
        if row is None:
            return None
        results = [
            TestResult(r["kind"], r["passed"], r["detail"])
            for r in (await self.session.execute(_RESULTS_OF_ONE, {"key": row["id"]})).mappings()
        ]
        return _to_job(row, results)

    async def _results_of(self, job_ids: list[str]) -> dict[str, list[TestResult]]:
        if not job_ids:
            return {}
        rows = await self.session.execute(
            select(test_results)
            .where(test_results.c.job_id.in_(job_ids))
            .order_by(test_results.c.job_id, test_results.c.position)
        )
        out: dict[str, list[TestResult]] = {}
        for r in rows.mappings():
            out.setdefault(r["job_id"], []).append(TestResult(r["kind"], r["passed"], r["detail"]))
        return out


def _to_job(row: Any, results: list[TestResult]) -> Job:
    created_at = row["created_at"]
    assert created_at is not None
    return Job(
        id=row["id"],
        order_id=row["order_id"],
        device_id=row["device_id"],
        business_type=row["business_type"],
        plan=row["plan"],
        locale=row["locale"],
        created_at=created_at,
        trace_headers=dict(row["trace_headers"] or {}),
        state=JobState(row["state"]),
        step=Step(row["step"]),
        reason=row["reason"],
        detail=row["detail"],
        alarm_id=row["alarm_id"],
        voucher_id=row["voucher_id"],
        config_version=row["config_version"],
        attempts=row["attempts"],
        step_attempts=row["step_attempts"],
        notify_failures=row["notify_failures"],
        delivery_id=row["delivery_id"],
        channel=row["channel"],
        test_results=results,
        step_started_at=row["step_started_at"],
        next_attempt_at=row["next_attempt_at"],
        updated_at=row["updated_at"],
    )
