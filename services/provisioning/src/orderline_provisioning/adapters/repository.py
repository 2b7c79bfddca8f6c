"""Jobs, test results, vouchers, device reservations and operator certifications in the
service's database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orderline_provisioning.adapters.tables import (
    activation_confirmations,
    certifications,
    customer_feedback,
    device_configs,
    device_health,
    device_reservations,
    jobs,
    test_results,
    test_runs,
    vouchers,
)
from orderline_provisioning.domain.certification import Certification
from orderline_provisioning.domain.checklist import ChecklistItem
from orderline_provisioning.domain.config import ConfigOperation, ConfigRecord
from orderline_provisioning.domain.confirmation import Confirmation, Feedback
from orderline_provisioning.domain.device_health import DeviceAlarm, DeviceWord
from orderline_provisioning.domain.job import (
    DEVICE_HOLD_REASONS,
    AdjustmentInHand,
    Finding,
    Job,
    SkippedTest,
    TestResult,
)
from orderline_provisioning.domain.steps import JobState, Step
from orderline_provisioning.domain.voucher import Voucher
from orderline_runtime.database import SqlConnection, dialect_of

# The statements of the hot path (the worker claims, loads and saves a job once per step),
# built once: building a statement costs more than running it (docs/performance.md).
_INSERT_JOB = insert(jobs)
# An approved order's job, unless the order has one already (a second approval, or the
# stand-in of a cancellation that came first): one statement where a select of the order's
# job id and an insert were two.
_INSERT_JOB_OF_NEW_ORDER = {
    "sqlite": sqlite.insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.order_id]),
    "postgresql": postgresql.insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.order_id]),
}
_JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("key"))
_JOB_BY_ORDER = select(jobs).where(jobs.c.order_id == bindparam("key"))
# Any write of a job by the worker holding its lease (a renewal, a release).
_SAVE_JOB = update(jobs).where(
    jobs.c.id == bindparam("key"), jobs.c.lease_owner == bindparam("owner")
)
# The worker's save of a step: also only while the job's cancellation is the one the worker
# loaded (none, for every order not cancelled), so a cancellation recorded while a step was in
# flight is never written over; the worker then takes it into account (app/worker.py).
# The same holds for a person's hold or resume of the order (domain/person_hold.py): the save
# lands only while the job's person-hold version is the one the worker loaded.
_SAVE_STEP = _SAVE_JOB.where(
    jobs.c.cancellation_id == bindparam("seen_cancellation"),
    jobs.c.person_hold_version == bindparam("seen_person_hold"),
)
_CANCELLATION_OF = select(
    jobs.c.cancellation_id,
    jobs.c.cancel_reason,
    jobs.c.cancel_requested_at,
    jobs.c.cancellation_state,
    jobs.c.state,
).where(jobs.c.id == bindparam("key"))
_PERSON_HOLD_OF = select(
    jobs.c.person_hold_reason,
    jobs.c.person_hold_by,
    jobs.c.person_held_at,
    jobs.c.person_hold_version,
).where(jobs.c.id == bindparam("key"))
_CANCELLABLE = (JobState.RUNNING.value, JobState.HELD.value)
_NOT_CANCELLED_YET = and_(
    jobs.c.id == bindparam("key"),
    jobs.c.cancellation_id == "",
    jobs.c.state.in_(_CANCELLABLE),
)
_RESULTS_OF_ONE = (
    select(test_results)
    .where(test_results.c.job_id == bindparam("key"))
    .order_by(test_results.c.position)
)
_DELETE_RESULTS = delete(test_results).where(test_results.c.job_id == bindparam("key"))
_INSERT_RESULTS = insert(test_results)
_INSERT_RUNS = insert(test_runs)
_RUNS_OF_ONE = (
    select(test_runs)
    .where(test_runs.c.job_id == bindparam("key"))
    .order_by(test_runs.c.round, test_runs.c.position)
)
_CONFIGS_OF_JOB = (
    select(device_configs)
    .where(device_configs.c.job_id == bindparam("key"))
    .order_by(device_configs.c.recorded_at, device_configs.c.config_version)
)
_CONFIGS_OF_DEVICE = (
    select(device_configs)
    .where(device_configs.c.device_id == bindparam("key"))
    .order_by(device_configs.c.recorded_at, device_configs.c.config_version)
)
# A replayed call recorded again (the same device and key) adds nothing.
_INSERT_CONFIGS = {
    "sqlite": sqlite.insert(device_configs).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(device_configs).on_conflict_do_nothing(),
}
# A job whose device another job has reserved is not runnable yet: it waits, unclaimed (no
# work, no write), and is taken once that job's terminal save deletes the reservation.
_DEVICE_TAKEN = exists().where(
    device_reservations.c.device_id == jobs.c.device_id,
    device_reservations.c.job_id != jobs.c.id,
)
_RUNNABLE = (
    select(jobs.c.id, jobs.c.device_id)
    .where(
        jobs.c.state == JobState.RUNNING.value,
        jobs.c.step != Step.DONE.value,
        jobs.c.next_attempt_at <= bindparam("now"),
        or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now")),
        ~_DEVICE_TAKEN,
    )
    .order_by(jobs.c.next_attempt_at)
    .limit(1)
)
# Two replicas never take the same row; each skips what the other holds (PostgreSQL; SQLite's
# BEGIN IMMEDIATE already lets one writer in at a time).
_RUNNABLE_SKIP_LOCKED = _RUNNABLE.with_for_update(of=jobs, skip_locked=True)


def _reserve(dialect: Any) -> Any:
    """Reserves the device for the job, or keeps the job's own reservation (a job taken up
    again after a crash or a retry): one row changed. Zero rows: another job holds the
    device. On PostgreSQL a second replica's insert waits for the first's commit, then
    finds the row and changes nothing, so two replicas never both get the device."""
    stmt = dialect.insert(device_reservations)
    return stmt.on_conflict_do_update(
        index_elements=[device_reservations.c.device_id],
        set_={"reserved_at": stmt.excluded.reserved_at},
        where=device_reservations.c.job_id == stmt.excluded.job_id,
    )


_RESERVE = {"sqlite": _reserve(sqlite), "postgresql": _reserve(postgresql)}
# Once per job (its terminal save, or a hold before it touched the device).
_RELEASE_DEVICE = delete(device_reservations).where(
    device_reservations.c.job_id == bindparam("key")
)
_CERTIFIED = select(certifications.c.principal).where(
    certifications.c.principal == bindparam("principal"),
    certifications.c.business_type == bindparam("business_type"),
    certifications.c.revoked_at.is_(None),
)
_CERTIFICATION = select(certifications).where(
    certifications.c.principal == bindparam("principal"),
    certifications.c.business_type == bindparam("business_type"),
)
_TAKE_LEASE = update(jobs).where(jobs.c.id == bindparam("key"))
# device-monitor's word on the job's device, read when the worker commits a step (one primary
# key lookup: the step boundary, app/worker.py).
_DEVICE_WORD = select(device_health).where(device_health.c.device_id == bindparam("key"))
_LEASE_FREE = or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now"))
_INSERT_VOUCHER = insert(vouchers)
_VOUCHER_BY_ID = select(vouchers).where(vouchers.c.id == bindparam("key"))


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "device_id": job.device_id,
        "business_type": job.business_type,
        "plan": job.plan,
        "locale": job.locale,
        **_step_values(job, checklist=True),
    }


def _step_values(job: Job, *, checklist: bool) -> dict[str, Any]:
    """The columns a step can change: all but those a job is created with and that nothing
    changes after (its device, business type, plan and locale). Writing those again at every
    step cost their binds and, on SQLite, a rewrite of the device_id index entry (SQLite
    updates every index on a column the statement sets, equal or not). `checklist=False`
    leaves the checklist column out too (see JobRepository.save)."""
    values: dict[str, Any] = {
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
        "notify_undelivered": job.notify_undelivered,
        "delivery_id": job.delivery_id,
        "channel": job.channel,
        "updated_at": job.updated_at,
        "step_started_at": job.step_started_at,
        "next_attempt_at": job.next_attempt_at,
        "operator": job.operator,
        "base_config_version": job.base_config_version,
        "network_action": job.network_action,
        "activation_id": job.activation_id,
        "activated_at": job.activated_at,
        "cancellation_state": job.cancellation_state,
        "cancel_decided_at": job.cancel_decided_at,
        "rolled_back_to": job.rolled_back_to,
        "compensation": job.compensation,
        "fallout_at": job.fallout_at,
        "fallout_retries": job.fallout_retries,
        "skipped_tests": (
            {k: t.to_record() for k, t in job.skipped_tests.items()} if job.skipped_tests else None
        ),
        "rounds_done": job.rounds_done,
        "adjustment": job.adjustment.to_record() if job.adjustment is not None else None,
        "recheck_fitness": job.recheck_fitness,
        "config_losses": job.config_losses,
    }
    if checklist:
        values["checklist"] = [i.record for i in job.checklist] if job.checklist else None
    return values


def _new_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "order_id": job.order_id,
        "trace_headers": dict(job.trace_headers),
        "created_at": job.created_at,
        **_job_values(job),
        **_cancellation_request(job),
    }


def _cancellation_request(job: Job) -> dict[str, Any]:
    """The request's columns, written by the cancellation handler only."""
    return {
        "cancellation_id": job.cancellation_id,
        "cancel_reason": job.cancel_reason,
        "cancel_requested_at": job.cancel_requested_at,
    }


def _person_hold(job: Job) -> dict[str, Any]:
    """The person's hold columns, written by the order's hold and resume events only."""
    return {
        "person_hold_reason": job.person_hold_reason,
        "person_hold_by": job.person_hold_by,
        "person_held_at": job.person_held_at,
        "person_hold_version": job.person_hold_version,
    }


@dataclass(frozen=True)
class PersonHoldSeen:
    """A job's person's hold as stored, read when the worker's save did not land."""

    reason: str
    by: str
    at: datetime | None
    version: int


@dataclass(frozen=True)
class CancellationSeen:
    """A job's cancellation as stored, read when the worker's save did not land."""

    cancellation_id: str
    reason: str
    requested_at: datetime | None
    state: str
    job_state: JobState


def _result_values(job_id: str, position: int, r: TestResult) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "kind": r.kind,
        "position": position,
        "passed": r.passed,
        "detail": r.detail,
        "measurements": dict(r.measurements),
        "findings": [f.to_record() for f in r.findings],
        "round": r.round,
        "invalid": r.invalid,
    }


def _to_result(row: Any) -> TestResult:
    return TestResult(
        kind=row["kind"],
        passed=row["passed"],
        detail=row["detail"],
        measurements=dict(row["measurements"] or {}),
        findings=tuple(Finding.from_record(f) for f in row["findings"] or ()),
        round=row["round"] or 1,
        invalid=bool(row["invalid"]),
        device_passed=bool(row.get("device_passed", True)),
        adjustment=dict(row.get("adjustment") or {}),
    )


def _to_config(row: Any) -> ConfigRecord:
    return ConfigRecord(
        device_id=row["device_id"],
        job_id=row["job_id"],
        order_id=row["order_id"],
        operation=ConfigOperation(row["operation"]),
        idempotency_key=row["idempotency_key"],
        config_version=row["config_version"],
        previous_version=row["previous_version"],
        template=row["template"],
        settings=dict(row["settings"] or {}),
        recorded_at=row["recorded_at"],
    )


class JobRepository:
    def __init__(self, session: SqlConnection) -> None:
        self.session = session

    # --- jobs -----------------------------------------------------------------------------

    async def add(self, job: Job) -> None:
        await self.session.execute(_INSERT_JOB, _new_row(job))

    async def add_unless_order_has_one(self, job: Job) -> bool:
        """Adds the job, as `add`, unless its order has a job already: False then, and
        nothing is written."""
        result = await self.session.execute(
            _INSERT_JOB_OF_NEW_ORDER[dialect_of(self.session)], _new_row(job)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def get(self, job_id: str) -> Job | None:
        return await self._load(_JOB_BY_ID, job_id)

    async def get_by_order(self, order_id: str) -> Job | None:
        return await self._load(_JOB_BY_ORDER, order_id)

    async def page(self, *, state: JobState | None, after_id: str, limit: int) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.id).limit(limit)
        if state is not None:
            stmt = stmt.where(jobs.c.state == state.value)
        if after_id:
            stmt = stmt.where(jobs.c.id > after_id)
        rows = (await self.session.execute(stmt)).mappings().all()
        results = await self._results_of([r["id"] for r in rows])
        return [_to_job(r, results.get(r["id"], [])) for r in rows]

    async def save(
        self,
        job: Job,
        *,
        lease_owner: str,
        keep_until: datetime | None = None,
        checklist: bool = True,
    ) -> bool:
        """Writes the job and gives up the lease, or keeps it until `keep_until` (the worker
        goes on with the next step at once); False when the lease was lost meanwhile (another
        worker may have run the step: the caller must roll back). `checklist=False`: the
        caller knows the job's checklist is the one stored (only the prechecks step makes
        one), so its column is left as it is rather than encoded and written again. The columns
        set when the job was created and never changed since are not written again."""
        result = await self.session.execute(
            _SAVE_STEP,
            {
                "key": job.id,
                "owner": lease_owner,
                "seen_cancellation": job.cancellation_id,
                "seen_person_hold": job.person_hold_version,
                **_step_values(job, checklist=checklist),
                "lease_owner": lease_owner if keep_until else None,
                "lease_until": keep_until,
            },
        )
        saved = bool(getattr(result, "rowcount", 0) == 1)
        if saved and _releases_device(job):
            # In the job's own transaction: the device is free exactly when the job is over.
            await self.session.execute(_RELEASE_DEVICE, {"key": job.id})
        return saved

    async def replace_test_results(self, job_id: str, results: Sequence[TestResult]) -> None:
        await self.session.execute(_DELETE_RESULTS, {"key": job_id})
        if results:
            await self.session.execute(
                _INSERT_RESULTS, [_result_values(job_id, i, r) for i, r in enumerate(results)]
            )

    async def add_test_runs(self, job_id: str, runs: Sequence[TestResult]) -> None:
        """Every round of the step, in one statement."""
        if not runs:
            return
        rows = []
        for i, r in enumerate(runs):
            row = _result_values(job_id, i, r)
            row["device_passed"] = r.device_passed
            row["adjustment"] = dict(r.adjustment)
            row["invalid"] = r.invalid
            rows.append(row)
        await self.session.execute(_INSERT_RUNS, rows)

    async def test_runs_of(self, job_id: str) -> list[TestResult]:
        rows = await self.session.execute(_RUNS_OF_ONE, {"key": job_id})
        return [_to_result(r) for r in rows.mappings()]

    # --- device configuration records -----------------------------------------------------

    async def add_config_records(self, records: Sequence[ConfigRecord]) -> None:
        """In one statement; a record of a replayed call (same device and key) adds nothing."""
        if not records:
            return
        await self.session.execute(
            _INSERT_CONFIGS[dialect_of(self.session)],
            [
                {
                    "device_id": c.device_id,
                    "idempotency_key": c.idempotency_key,
                    "job_id": c.job_id,
                    "order_id": c.order_id,
                    "operation": c.operation.value,
                    "config_version": c.config_version,
                    "previous_version": c.previous_version,
                    "template": c.template,
                    "settings": dict(c.settings),
                    "recorded_at": c.recorded_at,
                }
                for c in records
            ],
        )

    async def configs_of_job(self, job_id: str) -> list[ConfigRecord]:
        rows = await self.session.execute(_CONFIGS_OF_JOB, {"key": job_id})
        return [_to_config(r) for r in rows.mappings()]

    async def configs_of_device(self, device_id: str) -> list[ConfigRecord]:
        """The device's versioned configuration history, oldest first."""
        rows = await self.session.execute(_CONFIGS_OF_DEVICE, {"key": device_id})
        return [_to_config(r) for r in rows.mappings()]

    async def device_config_page(
        self, device_id: str, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[ConfigRecord]:
        """A page of the device's configuration history, newest first (by the time recorded,
        then key), after the position `before` (the last record of the previous page)."""
        stmt = (
            select(device_configs)
            .where(device_configs.c.device_id == device_id)
            .order_by(device_configs.c.recorded_at.desc(), device_configs.c.idempotency_key.desc())
            .limit(limit)
        )
        if before is not None:
            at, key = before
            stmt = stmt.where(
                or_(
                    device_configs.c.recorded_at < at,
                    and_(
                        device_configs.c.recorded_at == at,
                        device_configs.c.idempotency_key < key,
                    ),
                )
            )
        rows = await self.session.execute(stmt)
        return [_to_config(r) for r in rows.mappings()]

    async def rollbacks_on_device(
        self, device_id: str, job_ids: Sequence[str]
    ) -> list[ConfigRecord]:
        """The rollbacks these jobs recorded on the device (what undid their changes)."""
        if not job_ids:
            return []
        rows = await self.session.execute(
            select(device_configs).where(
                device_configs.c.device_id == device_id,
                device_configs.c.job_id.in_(set(job_ids)),
                device_configs.c.operation == ConfigOperation.ROLLBACK.value,
            )
        )
        return [_to_config(r) for r in rows.mappings()]

    # --- cancellation (not the hot path: only a cancelled order's job) --------------------

    async def cancellation_of(self, job_id: str) -> CancellationSeen | None:
        row = (await self.session.execute(_CANCELLATION_OF, {"key": job_id})).first()
        if row is None:
            return None
        cancellation_id, reason, requested_at, state, job_state = row
        return CancellationSeen(cancellation_id, reason, requested_at, state, JobState(job_state))

    async def cancel_untouched(self, job: Job) -> bool:
        """Ends a job that never got past its checklist (whether a checklist is in flight or
        not: it changes nothing on the device, and its save will not land), releasing its
        device; False when the job moved on meanwhile."""
        result = await self.session.execute(
            update(jobs).where(_NOT_CANCELLED_YET, jobs.c.step == Step.PRECHECKS.value),
            {
                "key": job.id,
                **_job_values(job),
                **_cancellation_request(job),
                "lease_owner": None,
                "lease_until": None,
            },
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        await self.session.execute(_RELEASE_DEVICE, {"key": job.id})
        return True

    async def take_over_for_cancel(self, job: Job, now: datetime) -> bool:
        """Writes the job at its cancel step if no worker holds it and it has not activated
        the service; False otherwise."""
        result = await self.session.execute(
            update(jobs).where(
                _NOT_CANCELLED_YET,
                jobs.c.activated_at.is_(None),
                or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now")),
            ),
            {
                "key": job.id,
                "now": now,
                **_job_values(job),
                **_cancellation_request(job),
                "lease_owner": None,
                "lease_until": None,
            },
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def flag_cancellation(self, job: Job, now: datetime) -> bool:
        """Records the request on a job a worker holds (a step in flight): the worker's save
        of that step will not land, and the worker decides. False when no worker holds it."""
        result = await self.session.execute(
            update(jobs).where(
                _NOT_CANCELLED_YET,
                jobs.c.lease_owner.is_not(None),
                jobs.c.lease_until >= bindparam("now"),
            ),
            {
                "key": job.id,
                "now": now,
                **_cancellation_request(job),
                "cancellation_state": job.cancellation_state,
            },
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def record_cancellation_answer(self, job: Job) -> None:
        """The answer to a cancellation of a job that is over (failed, completed): no worker
        writes it again."""
        await self.session.execute(
            update(jobs).where(
                jobs.c.id == bindparam("key"),
                jobs.c.cancellation_id == "",
                jobs.c.state.in_((JobState.FAILED.value, JobState.COMPLETED.value)),
            ),
            {
                "key": job.id,
                **_cancellation_request(job),
                "cancellation_state": job.cancellation_state,
                "cancel_decided_at": job.cancel_decided_at,
                "rolled_back_to": job.rolled_back_to,
                "compensation": job.compensation,
            },
        )

    # --- the fallout queue (a person's actions; not the hot path) --------------------------

    async def fallout_page(self, *, after: tuple[datetime, str] | None, limit: int) -> list[Job]:
        """Jobs in the fallout queue, oldest first (by the time they entered it, then id)."""
        stmt = (
            select(jobs)
            .where(jobs.c.state == JobState.HELD.value, jobs.c.fallout_at.is_not(None))
            .order_by(jobs.c.fallout_at, jobs.c.id)
            .limit(limit)
        )
        if after is not None:
            since, job_id = after
            stmt = stmt.where(
                or_(
                    jobs.c.fallout_at > since,
                    and_(jobs.c.fallout_at == since, jobs.c.id > job_id),
                )
            )
        rows = (await self.session.execute(stmt)).mappings().all()
        results = await self._results_of([r["id"] for r in rows])
        return [_to_job(r, results.get(r["id"], [])) for r in rows]

    async def save_fallout_action(self, job: Job, *, loaded_at: datetime | None) -> bool:
        """Writes a person's action on a job in fallout, only while it is still the job as
        loaded (in fallout since the same time, no worker holding it, no cancellation since);
        False otherwise. Releases the device when the action ended the job."""
        result = await self.session.execute(
            update(jobs).where(
                jobs.c.id == bindparam("key"),
                jobs.c.state == JobState.HELD.value,
                jobs.c.fallout_at == bindparam("loaded_at"),
                jobs.c.lease_owner.is_(None),
                jobs.c.cancellation_id == bindparam("seen_cancellation"),
            ),
            {
                "key": job.id,
                "loaded_at": loaded_at,
                "seen_cancellation": job.cancellation_id,
                **_job_values(job),
            },
        )
        saved = bool(getattr(result, "rowcount", 0) == 1)
        if saved and _releases_device(job):
            await self.session.execute(_RELEASE_DEVICE, {"key": job.id})
        return saved

    # --- device-monitor's word on devices (device.abnormal / device.recovered) -----------

    async def device_word(self, device_id: str) -> DeviceWord | None:
        row = (await self.session.execute(_DEVICE_WORD, {"key": device_id})).mappings().first()
        if row is None:
            return None
        return DeviceWord(
            device_id=row["device_id"],
            abnormal=bool(row["abnormal"]),
            event_time=row["event_time"],
            event_id=row["event_id"],
            alarms=tuple(DeviceAlarm.from_record(a) for a in row["alarms"] or ()),
            severity=row["severity"],
            rules_version=row["rules_version"],
            ticket_id=row["ticket_id"],
            changed_at=row["changed_at"],
        )

    async def record_device_word(self, word: DeviceWord, now: datetime) -> bool:
        """Keeps the word unless a newer one is kept already (a late redelivery): False then."""
        stored = await self.device_word(word.device_id)
        if not word.supersedes(stored):
            return False
        values = {
            "abnormal": word.abnormal,
            "alarm_id": word.alarm_id,
            "alarms": [a.to_record() for a in word.alarms],
            "severity": word.severity,
            "rules_version": word.rules_version,
            "ticket_id": word.ticket_id,
            "changed_at": word.changed_at,
            "event_time": word.event_time,
            "event_id": word.event_id,
            "recorded_at": now,
        }
        if stored is None:
            await self.session.execute(
                insert(device_health), {"device_id": word.device_id, **values}
            )
        else:
            await self.session.execute(
                update(device_health).where(device_health.c.device_id == word.device_id),
                values,
            )
        return True

    async def jobs_on_device(self, device_id: str, *, now: datetime) -> list[tuple[Job, bool]]:
        """The device's jobs that are running or held, each with whether a worker holds it now
        (a step in flight)."""
        stmt = select(jobs.c.id, _LEASE_FREE.label("free")).where(
            jobs.c.device_id == device_id,
            jobs.c.state.in_((JobState.RUNNING.value, JobState.HELD.value)),
        )
        rows = (await self.session.execute(stmt, {"now": now})).all()
        found = []
        for job_id, free in rows:
            job = await self.get(job_id)
            if job is not None:
                found.append((job, not free))
        return found

    async def save_untaken(self, job: Job, *, was: JobState, now: datetime) -> bool:
        """Writes a job a handler changed, only while it is as loaded: in state `was`, no
        worker holding it, no cancellation since (and, held, still for its device); False
        otherwise. Releases the device when the job is held before touching it."""
        conditions = [
            jobs.c.id == bindparam("key"),
            jobs.c.state == was.value,
            _LEASE_FREE,
            jobs.c.cancellation_id == bindparam("seen_cancellation"),
            # A person's hold or resume since the job was loaded decides first.
            jobs.c.person_hold_version == bindparam("seen_person_hold"),
        ]
        if was is JobState.HELD:
            conditions.append(jobs.c.reason.in_(sorted(DEVICE_HOLD_REASONS)))
        result = await self.session.execute(
            update(jobs).where(*conditions),
            {
                "key": job.id,
                "now": now,
                "seen_cancellation": job.cancellation_id,
                "seen_person_hold": job.person_hold_version,
                **_job_values(job),
            },
        )
        saved = bool(getattr(result, "rowcount", 0) == 1)
        if saved and _releases_device(job):
            await self.session.execute(_RELEASE_DEVICE, {"key": job.id})
        return saved

    # --- a person's hold of the order (order.hold_requested / order.resume_requested) ------

    async def person_hold_of(self, job_id: str) -> PersonHoldSeen | None:
        row = (await self.session.execute(_PERSON_HOLD_OF, {"key": job_id})).first()
        if row is None:
            return None
        reason, by, at, version = row
        return PersonHoldSeen(reason, by, at, int(version or 0))

    async def save_person_hold(
        self,
        job: Job,
        *,
        loaded_version: int,
        was: tuple[JobState, str] | None,
        now: datetime,
    ) -> bool:
        """Writes the person's hold or resume the handler took, only while the job's
        person-hold version is still `loaded_version` (no other hold or resume since). With
        `was` (the state and reason the job was loaded in), the job's own change too (held at
        its step, or running again), only while it is as loaded: in that state with that
        reason, no worker holding it, no cancellation since; and releases the device of a job
        held before it touched it. Without, only the person's hold columns: a worker running a
        step of the job finds its save refused and takes the hold at the step boundary
        (app/worker.py). False when the job changed meanwhile."""
        conditions = [
            jobs.c.id == bindparam("key"),
            jobs.c.person_hold_version == bindparam("loaded_version"),
        ]
        values = {"key": job.id, "loaded_version": loaded_version, **_person_hold(job)}
        if was is not None:
            state, reason = was
            conditions += [
                jobs.c.state == state.value,
                jobs.c.reason == bindparam("loaded_reason"),
                _LEASE_FREE,
                jobs.c.cancellation_id == bindparam("seen_cancellation"),
            ]
            values |= {
                "now": now,
                "loaded_reason": reason,
                "seen_cancellation": job.cancellation_id,
                **_job_values(job),
            }
        result = await self.session.execute(update(jobs).where(*conditions), values)
        saved = bool(getattr(result, "rowcount", 0) == 1)
        if saved and was is not None and _releases_device(job):
            await self.session.execute(_RELEASE_DEVICE, {"key": job.id})
        return saved

    # --- leases ---------------------------------------------------------------------------

    async def claim_next(self, owner: str, now: datetime, until: datetime) -> Job | None:
        """Takes the lease of the runnable job that has waited longest, if any, and reserves
        its device for it (or keeps its reservation). A job whose device another job holds is
        not taken: it waits."""
        dialect = dialect_of(self.session)
        stmt = _RUNNABLE_SKIP_LOCKED if dialect == "postgresql" else _RUNNABLE
        row = (await self.session.execute(stmt, {"now": now})).first()
        if row is None:
            return None
        job_id, device_id = row
        reserved = await self.session.execute(
            _RESERVE[dialect], {"device_id": device_id, "job_id": job_id, "reserved_at": now}
        )
        if getattr(reserved, "rowcount", 0) != 1:
            # Another replica reserved the device since our select: this job waits.
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

    async def waiting_for(self, waiting: Sequence[Job]) -> dict[str, str]:
        """Job id -> the id of the other job holding its device, for the running jobs among
        `waiting` that wait for their device (read side only, not the hot path)."""
        running = [j for j in waiting if j.runnable]
        if not running:
            return {}
        rows = await self.session.execute(
            select(device_reservations.c.device_id, device_reservations.c.job_id).where(
                device_reservations.c.device_id.in_({j.device_id for j in running})
            )
        )
        holders = {device: job_id for device, job_id in rows}
        return {
            j.id: holders[j.device_id] for j in running if holders.get(j.device_id, j.id) != j.id
        }

    # --- certifications -------------------------------------------------------------------

    async def is_certified(self, principal: str, business_type: str) -> bool:
        row = await self.session.execute(
            _CERTIFIED, {"principal": principal, "business_type": business_type}
        )
        return row.first() is not None

    async def certification(self, principal: str, business_type: str) -> Certification | None:
        row = (
            (
                await self.session.execute(
                    _CERTIFICATION, {"principal": principal, "business_type": business_type}
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _to_certification(row)

    async def put_certification(self, cert: Certification, *, exists_already: bool) -> None:
        values = {
            "granted_at": cert.granted_at,
            "granted_by": cert.granted_by,
            "revoked_at": cert.revoked_at,
            "revoked_by": cert.revoked_by or None,
            "revoke_reason": cert.revoke_reason or None,
        }
        if exists_already:
            await self.session.execute(
                update(certifications)
                .where(
                    certifications.c.principal == cert.principal,
                    certifications.c.business_type == cert.business_type,
                )
                .values(**values)
            )
        else:
            await self.session.execute(
                insert(certifications).values(
                    principal=cert.principal, business_type=cert.business_type, **values
                )
            )

    async def certifications(
        self, *, principal: str = "", business_type: str = "", include_revoked: bool = False
    ) -> list[Certification]:
        conditions = []
        if principal:
            conditions.append(certifications.c.principal == principal)
        if business_type:
            conditions.append(certifications.c.business_type == business_type)
        if not include_revoked:
            conditions.append(certifications.c.revoked_at.is_(None))
        stmt = select(certifications).order_by(
            certifications.c.principal, certifications.c.business_type
        )
        if conditions:
            stmt = stmt.where(and_(*conditions))
        rows = (await self.session.execute(stmt)).mappings().all()
        return [_to_certification(r) for r in rows]

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

    # --- the customer's confirmation and feedback ----------------------------------------

    async def confirmation(self, order_id: str) -> Confirmation | None:
        stmt = select(activation_confirmations).where(
            activation_confirmations.c.order_id == order_id
        )
        row = (await self.session.execute(stmt)).mappings().first()
        if row is None:
            return None
        return Confirmation(
            row["job_id"], row["order_id"], row["channel"], row["confirmed_by"],
            row["confirmed_at"],
        )  # fmt: skip

    async def add_confirmation(self, c: Confirmation) -> None:
        await self.session.execute(
            insert(activation_confirmations).values(
                order_id=c.order_id,
                job_id=c.job_id,
                channel=c.channel,
                confirmed_by=c.confirmed_by,
                confirmed_at=c.confirmed_at,
            )
        )

    async def feedback(self, order_id: str) -> Feedback | None:
        stmt = select(customer_feedback).where(customer_feedback.c.order_id == order_id)
        row = (await self.session.execute(stmt)).mappings().first()
        if row is None:
            return None
        return Feedback(
            row["job_id"], row["order_id"], int(row["score"]), row["comment"], row["channel"],
            row["recorded_by"], row["recorded_at"],
        )  # fmt: skip

    async def add_feedback(self, f: Feedback) -> None:
        await self.session.execute(
            insert(customer_feedback).values(
                order_id=f.order_id,
                job_id=f.job_id,
                score=f.score,
                comment=f.comment,
                channel=f.channel,
                recorded_by=f.recorded_by,
                recorded_at=f.recorded_at,
            )
        )

    # --- helpers --------------------------------------------------------------------------

    async def _load(self, stmt: Any, key: str) -> Job | None:
        row = (await self.session.execute(stmt, {"key": key})).mappings().first()
        if row is None:
            return None
        results = [
            _to_result(r)
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
            out.setdefault(r["job_id"], []).append(_to_result(r))
        return out


def _releases_device(job: Job) -> bool:
    """Completed or failed; or held before it touched the device (its checklist failed), so
    that a job waiting for a person does not keep another order from the device. A job held
    after configuring keeps it: the device carries its configuration."""
    if job.state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
        return True
    return job.state is JobState.HELD and not job.touched_device


def _to_certification(row: Any) -> Certification:
    return Certification(
        principal=row["principal"],
        business_type=row["business_type"],
        granted_at=row["granted_at"],
        granted_by=row["granted_by"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"] or "",
        revoke_reason=row["revoke_reason"] or "",
    )


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
        notify_undelivered=int(row.get("notify_undelivered") or 0),
        delivery_id=row["delivery_id"],
        channel=row["channel"],
        test_results=results,
        operator=row["operator"] or "",
        checklist=[ChecklistItem.from_record(i) for i in row["checklist"] or ()],
        base_config_version=row["base_config_version"],
        network_action=row["network_action"] or "",
        activation_id=row["activation_id"] or "",
        activated_at=row["activated_at"],
        cancellation_id=row["cancellation_id"] or "",
        cancel_reason=row["cancel_reason"] or "",
        cancel_requested_at=row["cancel_requested_at"],
        cancellation_state=row["cancellation_state"] or "",
        cancel_decided_at=row["cancel_decided_at"],
        rolled_back_to=row["rolled_back_to"],
        compensation=row["compensation"] or "",
        fallout_at=row["fallout_at"],
        fallout_retries=row["fallout_retries"] or 0,
        skipped_tests={
            k: SkippedTest.from_record(v) for k, v in (row["skipped_tests"] or {}).items()
        },
        rounds_done=row["rounds_done"] or 0,
        adjustment=AdjustmentInHand.from_record(row.get("adjustment")),
        recheck_fitness=bool(row.get("recheck_fitness")),
        config_losses=int(row.get("config_losses") or 0),
        person_hold_reason=row.get("person_hold_reason") or "",
        person_hold_by=row.get("person_hold_by") or "",
        person_held_at=row.get("person_held_at"),
        person_hold_version=int(row.get("person_hold_version") or 0),
        step_started_at=row["step_started_at"],
        next_attempt_at=row["next_attempt_at"],
        updated_at=row["updated_at"],
    )
