"""The job worker: claims runnable jobs and runs one step at a time, each step committed with
its events in one transaction, under the trace context the job was created in.

Claims are leases (`lease_owner`, `lease_until` on the job), renewed while a step runs. On
PostgreSQL the claim selects with FOR UPDATE SKIP LOCKED, so replicas never take the same job
at once, and a dead replica's job is taken over when its lease lapses. On SQLite there is one
worker per database: at start it releases the leases a killed process left behind, so the job
resumes at once at the step that was in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import datetime, timedelta

from opentelemetry.context import Context
from opentelemetry.trace import StatusCode

from orderline.events.v1.provisioning_events_pb2 import JobHeld
from orderline_provisioning.adapters.repository import CancellationSeen, JobRepository
from orderline_provisioning.app.device_events import job_held
from orderline_provisioning.app.steps import (
    StepOutcome,
    StepRunner,
    cancellation_accepted,
    cancellation_completed,
    cancellation_declined,
)
from orderline_provisioning.domain import device_health, person_hold
from orderline_provisioning.domain.cancellation import (
    SERVICE_ALREADY_ACTIVATED,
    CancellationState,
    answered_after_failure,
    begin_compensation,
    decline,
    past_point_of_no_return,
    take_request,
)
from orderline_provisioning.domain.certification import DEFAULT_OPERATOR
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState, Step
from orderline_runtime.clock import Clock
from orderline_runtime.logs import get_logger
from orderline_runtime.telemetry import extract, order_scope, tracer
from orderline_runtime.telemetry_names import ATTEMPT, JOB_ID, JOB_STATE, REASON, STEP, step_span
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


class LeaseLost(Exception):
    """Another worker took the job while this one ran the step: its result is dropped."""


class JobWorker:
    def __init__(
        self,
        uow: UnitOfWorkFactory[JobRepository],
        runner: StepRunner,
        clock: Clock,
        *,
        operator: str = DEFAULT_OPERATOR,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        lease_seconds: float = 30.0,
    ) -> None:
        self.uow = uow
        self.runner = runner
        self.clock = clock
        # The principal automated jobs run under (domain/certification.py).
        self.operator = operator
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()

    def notify(self) -> None:
        """A job became runnable (created, or a step finished)."""
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.stopping = stop
        async with self.uow() as uow:
            released = await uow.repos.release_orphaned_leases()
        if released:
            log.info("released leases of a previous process", jobs=released)
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not stop.is_set():
                await slots.acquire()
                self.wake.clear()
                try:
                    job = await self._claim()
                    failures = 0
                except Exception as exc:
                    slots.release()
                    failures += 1
                    delay = min(0.2 * 2**failures, 5.0)
                    log.warning("claiming a job failed, retrying", error=str(exc), delay=delay)
                    await _wait_any(stop, None, delay)
                    continue
                if job is None:
                    slots.release()
                    await _wait_any(stop, self.wake, self.poll_seconds)
                    continue
                task = asyncio.create_task(self._run_in_slot(job, slots), name=f"job {job.id}")
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            # Steps in hand finish (their calls have deadlines) before the worker returns.
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _claim(self) -> Job | None:
        now = self.clock()
        async with self.uow() as uow:
            job = await uow.repos.claim_next(self.owner, now, now + self.lease)
            if job is None:
                return None
            if not job.operator:
                job.operator = self.operator
            if person_hold.hold_now(job, now):
                # A person held the order after this job's last step was committed (or while
                # it waited for a retry): it stops here, before its step touches anything.
                await uow.repos.save(job, lease_owner=self.owner)
                log.info(
                    "order held by a person; job held before its step",
                    job_id=job.id,
                    step=job.step.value,
                    held_by=job.person_hold_by,
                )
                return None
            if job.step in device_health.DEVICE_CALL_STEPS:
                # A job taken up again (after a backoff, a crash) whose device device-monitor
                # reported abnormal meanwhile stops here, before touching it.
                word = await uow.repos.device_word(job.device_id)
                if word is not None and device_health.hold_now(job, word, now):
                    await uow.repos.save(job, lease_owner=self.owner)
                    uow.emit(job_held(job), order_id=job.order_id, device_id=job.device_id)
                    log.warning(
                        "device abnormal; job held before its step",
                        job_id=job.id,
                        step=job.step.value,
                        alarm_id=job.alarm_id,
                    )
                    uow.on_commit(self.notify)
                    return None
            if job.step is Step.PRECHECKS:
                # Read here, in the claim's transaction, rather than in a transaction of
                # its own: the checklist then costs no extra round trip to the database.
                job.operator_certified = await uow.repos.is_certified(
                    job.operator, job.business_type
                )
            return job

    async def _run_in_slot(self, job: Job, slots: asyncio.Semaphore) -> None:
        try:
            # A job whose next step may run now keeps its lease and its slot: no claim
            # transaction and no wake-up between steps. Its trace context is read from its
            # headers once (they are the job's for life), not again for every step.
            parent = extract(job.trace_headers)
            while await self.run_step(job, parent):
                pass
        finally:
            slots.release()
            self.notify()

    async def run_step(self, job: Job, parent: Context | None = None) -> bool:
        """Runs the claimed job's step and commits it; never raises. True when the job kept its
        lease because its next step may run at once. `parent`: the context of the job's trace
        headers, when the caller has it already."""
        with (
            tracer().start_as_current_span(
                step_span(job.step.value),
                context=parent if parent is not None else extract(job.trace_headers),
                attributes={
                    JOB_ID: job.id,
                    STEP: job.step.value,
                    ATTEMPT: job.step_attempts + 1,
                },
            ) as span,
            order_scope(job.order_id, job.device_id),
        ):
            step = job.step
            try:
                async with self._keep_lease(job.id):
                    outcome = await self.runner.run(job)
                chained = await self._commit(job, outcome, step)
            except LeaseLost:
                span.set_status(StatusCode.ERROR, "lease lost")
                log.warning("lease lost during step; result dropped", job_id=job.id, step=step)
                return False
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                log.exception("step crashed; will retry", job_id=job.id, step=step)
                await self._retry_after_crash(job, exc)
                return False
            if job.state is not JobState.RUNNING or job.reason:
                span.set_attribute(JOB_STATE, job.state.value)
                span.set_attribute(REASON, job.reason)
            if job.state in (JobState.HELD, JobState.FAILED):
                span.set_status(StatusCode.ERROR, job.reason)
            return chained

    async def _commit(self, job: Job, outcome: StepOutcome, step: Step) -> bool:
        """Commits the step with its events; True when the job keeps its lease for its next
        step, which may run now (not while stopping: the step in hand was the last). The step
        boundary: a device device-monitor reports abnormal holds the job here
        (domain/device_health.py)."""
        now = self.clock()
        async with self.uow() as uow:
            if step is not Step.PRECHECKS and step is not Step.CANCEL:
                word = await uow.repos.device_word(job.device_id)
                if device_health.stop_at_boundary(job, step, word, now):
                    outcome.events = [e for e in outcome.events if not isinstance(e, JobHeld)] + [
                        job_held(job)
                    ]
                    log.warning(
                        "device abnormal; job held at its step boundary",
                        job_id=job.id,
                        step=job.step.value,
                        alarm_id=job.alarm_id,
                    )
            chain = (
                job.runnable
                and job.next_attempt_at is not None
                and job.next_attempt_at <= now
                and not self.stopping.is_set()
            )
            keep_until = now + self.lease if chain else None
            # Only the prechecks step makes a checklist (no handler changes one), so after
            # any other step the stored one is the job's: it is not encoded and written again.
            checklist = step is Step.PRECHECKS
            if not await uow.repos.save(
                job, lease_owner=self.owner, keep_until=keep_until, checklist=checklist
            ):
                # Only now, off the path of every order neither cancelled nor held by a
                # person: was it, while the step ran?
                if not await self._intervened_meanwhile(uow.repos, job, outcome):
                    raise LeaseLost(job.id)
                chain = job.runnable and not self.stopping.is_set()
                keep_until = now + self.lease if chain else None
                if not await uow.repos.save(
                    job, lease_owner=self.owner, keep_until=keep_until, checklist=checklist
                ):
                    raise LeaseLost(job.id)
            if outcome.test_results is not None:
                await uow.repos.replace_test_results(job.id, outcome.test_results)
            await uow.repos.add_test_runs(job.id, outcome.test_runs)
            await uow.repos.add_config_records(outcome.config_records)
            if outcome.voucher is not None:
                await uow.repos.add_voucher(outcome.voucher)
            for payload in outcome.events:
                uow.emit(payload, order_id=job.order_id, device_id=job.device_id)
        return chain

    async def _intervened_meanwhile(
        self, repos: JobRepository, job: Job, outcome: StepOutcome
    ) -> bool:
        """The step's save did not land: the order's cancellation or a person's hold or
        resume may have reached the job while the step ran. The step's result is kept, and the
        job takes them into account, the cancellation first (it decides the job). False: the
        lease was lost, or the cancellation already ended the job."""
        person = await repos.person_hold_of(job.id)
        seen = await repos.cancellation_of(job.id)
        if person is None or seen is None:
            return False
        held_meanwhile = person.version != job.person_hold_version
        if held_meanwhile:
            # The handler's word as stored; the rest of the job is the step's result.
            job.person_hold_reason = person.reason
            job.person_hold_by = person.by
            job.person_held_at = person.at
            job.person_hold_version = person.version
        if seen.cancellation_id != job.cancellation_id:
            if not self._cancelled_meanwhile(job, seen, outcome):
                return False
            # Declined (past activation): a person's hold still stops the job before its
            # notice; otherwise the cancellation has the job.
            person_hold.stop_at_boundary(job, self.clock())
            return True
        if held_meanwhile and person_hold.stop_at_boundary(job, self.clock()):
            log.info(
                "order held by a person while a step ran; job held at its step boundary",
                job_id=job.id,
                step=job.step.value,
                held_by=job.person_hold_by,
            )
        return held_meanwhile

    def _cancelled_meanwhile(self, job: Job, seen: CancellationSeen, outcome: StepOutcome) -> bool:
        """The order's cancellation was recorded while the step ran: the step's result is kept
        and the job takes the cancellation into account: declined past the point of no return,
        answered for a failed job (its failure rolled the device back), else the job goes to
        its cancel step. False: the cancellation already ended the job (it never touched the
        device)."""
        if seen.job_state is JobState.CANCELLED or seen.state != CancellationState.REQUESTED:
            return False
        assert seen.requested_at is not None
        now = self.clock()
        take_request(job, seen.cancellation_id, seen.reason, seen.requested_at)
        if past_point_of_no_return(job):
            decline(job, now)
            outcome.add(
                cancellation_declined(
                    job,
                    SERVICE_ALREADY_ACTIVATED,
                    "the step in flight activated the service before the job could stop",
                )
            )
        elif job.state is JobState.FAILED:
            answered_after_failure(job, now)
            outcome.add(cancellation_completed(job))
        else:
            begin_compensation(job, now)
            outcome.add(cancellation_accepted(job))
        log.info(
            "order cancelled while a step ran",
            job_id=job.id,
            cancellation_id=job.cancellation_id,
            outcome=job.cancellation_state,
        )
        return True

    async def _retry_after_crash(self, job: Job, exc: Exception) -> None:
        """An unexpected error (a bug, a database hiccup): back off and try the step again."""
        try:
            async with self.uow() as uow:
                fresh = await uow.repos.get(job.id)
                if fresh is None or not fresh.runnable:
                    return
                fresh.retry_later(
                    "INTERNAL_ERROR", repr(exc)[:500], self.clock(), self.runner.policy.retry
                )
                await uow.repos.save(fresh, lease_owner=self.owner)
        except Exception as again:
            # The lease lapses and the step is tried again then.
            log.error("could not record the crash of a step", job_id=job.id, error=str(again))

    def _keep_lease(self, job_id: str) -> _LeaseKeeper:
        return _LeaseKeeper(self, job_id)


class _LeaseKeeper:
    """Renews the lease of a running step every third of the lease until the step ends.
    The first renewal waits on a timer rather than in a task: nearly every step ends before
    it, and a task created, cancelled and awaited per step cost about 25 µs (issue #8)."""

    def __init__(self, worker: JobWorker, job_id: str) -> None:
        self.worker = worker
        self.job_id = job_id
        self.interval = worker.lease.total_seconds() / 3
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._start)

    def _start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        # Started a third of the lease after the step: renew, then every third again.
        worker = self.worker
        while True:
            try:
                async with worker.uow() as uow:
                    until: datetime = worker.clock() + worker.lease
                    kept = await uow.repos.renew_lease(self.job_id, worker.owner, until)
                if not kept:
                    log.warning("lease of a running step was taken", job_id=self.job_id)
                    return
            except Exception as exc:
                log.warning("lease renewal failed", job_id=self.job_id, error=str(exc))
            await asyncio.sleep(self.interval)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _wait_any(stop: asyncio.Event, other: asyncio.Event | None, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
