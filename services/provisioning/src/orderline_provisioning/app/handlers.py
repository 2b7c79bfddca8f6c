"""Event handlers: an approved order becomes a provisioning job; a cancelled one stops it; a
person's hold of the order pauses it and their resume lets it go on (domain/person_hold.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from orderline.events.v1 import order_events_pb2, provisioning_events_pb2
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.app.steps import (
    cancellation_accepted,
    cancellation_completed,
    cancellation_declined,
)
from orderline_provisioning.domain import cancellation as cancel
from orderline_provisioning.domain import person_hold
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.person_hold import PersonWord, Release
from orderline_provisioning.domain.steps import JobState
from orderline_runtime.clock import Clock
from orderline_runtime.errors import PoisonMessage, Unavailable
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
        return [
            Handler(order_events_pb2.OrderApproved, self.on_order_approved),
            Handler(order_events_pb2.OrderCancellationRequested, self.on_cancellation_requested),
            Handler(order_events_pb2.OrderHoldRequested, self.on_hold_requested),
            Handler(order_events_pb2.OrderResumeRequested, self.on_resume_requested),
        ]

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
        # One statement: the job is written unless the order has one (no select before).
        if not await uow.repos.add_unless_order_has_one(job):
            log.info("order already has a job; approval ignored", event_id=event.id)
            return
        uow.emit(
            provisioning_events_pb2.JobStarted(
                job_id=job.id, order_id=job.order_id, device_id=job.device_id
            )
        )
        uow.on_commit(self.on_job_created)
        log.info("provisioning job created", job_id=job.id, device_id=job.device_id)

    async def on_cancellation_requested(
        self,
        uow: UnitOfWork[JobRepository],
        event: ReceivedEvent,
        payload: order_events_pb2.OrderCancellationRequested,
    ) -> None:
        """Stops the order's job (domain/cancellation.py): at once when it never touched the
        device, through its cancel step (a rollback) when it did, after the step in flight
        when a worker holds it; declined past the point of no return."""
        if not payload.order_id or not payload.cancellation_id:
            raise PoisonMessage("order.cancellation_requested without an order or request id")
        now = self.clock()
        requested_at = (
            event.envelope.time.ToDatetime(tzinfo=UTC) if event.envelope.HasField("time") else now
        )
        job = await uow.repos.get_by_order(payload.order_id)
        if job is None:
            # The approval has not reached provisioning (or never will): a cancelled job
            # stands in, so that a late approval starts nothing.
            job = Job(
                id=new_id(),
                order_id=payload.order_id,
                device_id=payload.device_id,
                business_type=payload.business_type,
                plan="",
                locale="",
                created_at=now,
            )
            cancel.take_request(job, payload.cancellation_id, payload.reason_code, requested_at)
            cancel.cancel_now(job, now)
            await uow.repos.add(job)
            uow.emit(cancellation_completed(job))
            log.info("order cancelled before its job existed", order_id=job.order_id)
            return
        decision = cancel.decide(job)
        if decision is cancel.Decision.ALREADY_DECIDED:
            log.info("job's cancellation already decided", job_id=job.id)
            return
        cancel.take_request(job, payload.cancellation_id, payload.reason_code, requested_at)
        if decision is cancel.Decision.DECLINE:
            cancel.decline(job, now)
            if job.state is JobState.COMPLETED:
                await uow.repos.record_cancellation_answer(job)
            uow.emit(
                cancellation_declined(
                    job, cancel.SERVICE_ALREADY_ACTIVATED, "the job had activated the service"
                )
            )
        elif decision is cancel.Decision.ALREADY_FAILED:
            cancel.answered_after_failure(job, now)
            await uow.repos.record_cancellation_answer(job)
            uow.emit(cancellation_completed(job))
        elif decision is cancel.Decision.CANCEL_NOW:
            cancel.cancel_now(job, now)
            if not await uow.repos.cancel_untouched(job):
                raise Unavailable(f"job {job.id} moved on while cancelled; trying again")
            uow.emit(cancellation_completed(job))
        else:
            cancel.begin_compensation(job, now)
            if await uow.repos.take_over_for_cancel(job, now):
                uow.emit(cancellation_accepted(job))
                uow.on_commit(self.on_job_created)
            else:
                # A worker runs a step of the job: it decides once the step is saved.
                job.cancellation_state = cancel.CancellationState.REQUESTED
                if not await uow.repos.flag_cancellation(job, now):
                    raise Unavailable(f"job {job.id} changed hands while cancelled; trying again")
        log.info(
            "cancellation requested",
            job_id=job.id,
            decision=decision.value,
            cancellation_id=payload.cancellation_id,
        )

    async def on_hold_requested(
        self,
        uow: UnitOfWork[JobRepository],
        event: ReceivedEvent,
        payload: order_events_pb2.OrderHoldRequested,
    ) -> None:
        """A person held the order: its job stops at its next step boundary (at once when no
        worker runs a step of it), held PERSON_HOLD. No event: the order is held already, by
        the person; GetJob shows the job held and why."""
        word = PersonWord(
            order_version=payload.order_version,
            hold=True,
            reason_code=payload.reason_code or "OTHER",
            actor=payload.held_by,
            at=_event_time(event, self.clock),
        )
        job = await self._job_for(uow, payload.order_id, payload.order_version, event)
        loaded_version, loaded = job.person_hold_version, (job.state, job.reason)
        if not person_hold.take(job, word):
            log.info("older hold of the order ignored", job_id=job.id, event_id=event.id)
            return
        now = self.clock()
        if person_hold.hold_now(job, now) and await uow.repos.save_person_hold(
            job, loaded_version=loaded_version, was=loaded, now=now
        ):
            log.info("order held by a person; job held", job_id=job.id, step=job.step.value)
            return
        # No worker ran it when read, but one took it up since (or it changed): the hold is
        # recorded alone, and the worker takes it at its step boundary or its next claim.
        if not await uow.repos.save_person_hold(
            job, loaded_version=loaded_version, was=None, now=now
        ):
            raise Unavailable(f"job {job.id} changed while its order was held; trying again")
        log.info(
            "order held by a person; job stops at its step boundary",
            job_id=job.id,
            state=job.state.value,
            step=job.step.value,
        )

    async def on_resume_requested(
        self,
        uow: UnitOfWork[JobRepository],
        event: ReceivedEvent,
        payload: order_events_pb2.OrderResumeRequested,
    ) -> None:
        """The person's hold is lifted: a job held for it runs again from the step it was held
        at, unless its device is abnormal now (held for it: provisioning.job_held); a job held
        for something else stays held and says so again, so that intake holds the order."""
        word = PersonWord(
            order_version=payload.order_version,
            hold=False,
            reason_code=payload.reason_code,
            actor=payload.resumed_by,
            at=_event_time(event, self.clock),
        )
        job = await self._job_for(uow, payload.order_id, payload.order_version, event)
        loaded_version, loaded = job.person_hold_version, (job.state, job.reason)
        if not person_hold.take(job, word):
            log.info("older resume of the order ignored", job_id=job.id, event_id=event.id)
            return
        now = self.clock()
        outcome = person_hold.release(job, await uow.repos.device_word(job.device_id), now)
        changed = outcome in (Release.RESUMED, Release.HELD_FOR_DEVICE)
        if not await uow.repos.save_person_hold(
            job, loaded_version=loaded_version, was=loaded if changed else None, now=now
        ):
            raise Unavailable(f"job {job.id} changed while its order was resumed; trying again")
        if outcome is Release.RESUMED:
            uow.on_commit(self.on_job_created)
        elif outcome in (Release.HELD_FOR_DEVICE, Release.STILL_HELD):
            uow.emit(held_still(job), order_id=job.order_id, device_id=job.device_id)
        log.info(
            "order resumed by a person",
            job_id=job.id,
            outcome=outcome.value,
            step=job.step.value,
            reason=job.reason,
        )

    @staticmethod
    async def _job_for(
        uow: UnitOfWork[JobRepository], order_id: str, version: int, event: ReceivedEvent
    ) -> Job:
        if not order_id or version <= 0:
            raise PoisonMessage(f"{event.event_type} without an order id or order version")
        job = await uow.repos.get_by_order(order_id)
        if job is None:
            # Intake holds only an approved order: its approval has not been handled yet
            # (delivered later after a retry). Tried again with backoff.
            raise Unavailable(f"order {order_id} has no job yet; its approval comes first")
        return job


def held_still(job: Job) -> provisioning_events_pb2.JobHeld:
    """The job's hold told again after a person's resume of its order: intake holds the order
    (for provisioning) that the person's resume let go on."""
    return provisioning_events_pb2.JobHeld(
        job_id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        reason_code=job.reason,
        alarm_id=job.alarm_id,
        detail=job.detail,
        channel=job.channel,
        attempts=job.notify_failures,
    )


def _event_time(event: ReceivedEvent, clock: Clock) -> datetime:
    if event.envelope.HasField("time"):
        return event.envelope.time.ToDatetime(tzinfo=UTC)
    return clock()
