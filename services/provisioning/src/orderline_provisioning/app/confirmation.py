"""The customer's confirmation and feedback, recorded by the clerk after the call
(domain/confirmation.py says what is allowed): each once per order, in one transaction with
its event (provisioning.activation_confirmed, provisioning.feedback_recorded) through the
outbox."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.events.v1 import provisioning_events_pb2 as ev
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain import confirmation as domain
from orderline_provisioning.domain.confirmation import Confirmation, Feedback
from orderline_provisioning.domain.job import Job
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PreconditionViolation,
)
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


def _ts(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def _refused(exc: domain.NotCompleted | domain.AlreadyRecorded) -> Exception:
    if isinstance(exc, domain.NotCompleted):
        job = exc.job
        return FailedPrecondition(
            str(exc),
            reason=domain.JOB_NOT_COMPLETED,
            violations=[
                PreconditionViolation(
                    domain.JOB_NOT_COMPLETED, job.id, f"{job.state.value} at {job.step.value}"
                )
            ],
        )
    return AlreadyExists(str(exc), reason=exc.code)


class CustomerConfirmations:
    def __init__(self, uow: UnitOfWorkFactory[JobRepository], clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    @staticmethod
    async def _job(uow: UnitOfWork[JobRepository], job_id: str, order_id: str) -> Job:
        job = await uow.repos.get(job_id) if job_id else await uow.repos.get_by_order(order_id)
        if job is None:
            raise NotFound("job", job_id or f"order {order_id}")
        return job

    async def confirm(self, *, job_id: str, order_id: str, channel: str, by: str) -> Confirmation:
        async with self.uow() as uow:
            job = await self._job(uow, job_id, order_id)
            existing = await uow.repos.confirmation(job.order_id)
            try:
                record, new = domain.confirm(job, existing, channel, by, self.clock())
            except (domain.NotCompleted, domain.AlreadyRecorded) as exc:
                raise _refused(exc) from None
            if new:
                await uow.repos.add_confirmation(record)
                uow.emit(
                    ev.ActivationConfirmed(
                        job_id=job.id,
                        order_id=job.order_id,
                        device_id=job.device_id,
                        business_type=job.business_type,
                        channel=record.channel,
                        confirmed_by=record.confirmed_by,
                        confirmed_at=_ts(record.confirmed_at),
                    ),
                    order_id=job.order_id,
                    device_id=job.device_id,
                )
        if new:
            log.info("activation confirmed", job_id=job.id, channel=channel, by=by)
        return record

    async def record_feedback(
        self, *, job_id: str, order_id: str, score: int, comment: str, channel: str, by: str
    ) -> Feedback:
        async with self.uow() as uow:
            job = await self._job(uow, job_id, order_id)
            existing = await uow.repos.feedback(job.order_id)
            try:
                record, new = domain.record_feedback(
                    job, existing, score, comment, channel, by, self.clock()
                )
            except (domain.NotCompleted, domain.AlreadyRecorded) as exc:
                raise _refused(exc) from None
            if new:
                await uow.repos.add_feedback(record)
                uow.emit(
                    ev.FeedbackRecorded(
                        job_id=job.id,
                        order_id=job.order_id,
                        device_id=job.device_id,
                        business_type=job.business_type,
                        score=record.score,
                        comment=record.comment,
                        channel=record.channel,
                        recorded_by=record.recorded_by,
                        recorded_at=_ts(record.recorded_at),
                    ),
                    order_id=job.order_id,
                    device_id=job.device_id,
                )
        if new:
            log.info("feedback recorded", job_id=job.id, score=score, channel=channel, by=by)
        return record

    async def of_order(self, order_id: str) -> tuple[Confirmation | None, Feedback | None]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.confirmation(order_id), await uow.repos.feedback(order_id)
