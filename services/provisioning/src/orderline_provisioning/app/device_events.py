"""Event handlers for device-monitor's word on a device: device.abnormal stops the device's job
(held DEVICE_ABNORMAL, naming the alarm; intake holds the order on provisioning.job_held),
device.recovered resumes it from the step it was held at (intake resumes the order at the job's
next milestone). The decisions are domain/device_health.py; each handler runs in the consumer's
transaction with its inbox, so a duplicate changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2, provisioning_events_pb2
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain import device_health
from orderline_provisioning.domain.device_health import DeviceAlarm, DeviceWord
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState
from orderline_runtime.clock import Clock
from orderline_runtime.errors import PoisonMessage, Unavailable
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

Uow = UnitOfWork[JobRepository]


def _category(value: int) -> str:
    name = device_pb2.HealthCategory.Name(value)  # type: ignore[arg-type]
    return name.removeprefix("HEALTH_CATEGORY_").lower()


def _severity(value: int) -> str:
    if value == device_pb2.PERCEIVED_SEVERITY_UNSPECIFIED:
        return ""
    name = device_pb2.PerceivedSeverity.Name(value)  # type: ignore[arg-type]
    return name.removeprefix("PERCEIVED_SEVERITY_").lower()


def _event_time(event: ReceivedEvent) -> datetime:
    if not event.envelope.HasField("time"):
        raise PoisonMessage(f"{event.event_type} envelope has no time")
    return event.envelope.time.ToDatetime(tzinfo=UTC)


def _device_id(
    payload: device_events_pb2.DeviceAbnormal | device_events_pb2.DeviceRecovered,
    event: ReceivedEvent,
) -> str:
    device_id = payload.device_id or event.envelope.device_id
    if not device_id or len(device_id) > 64:
        raise PoisonMessage(f"{event.event_type} names no usable device id")
    return device_id


def word_of_abnormal(event: ReceivedEvent, payload: device_events_pb2.DeviceAbnormal) -> DeviceWord:
    return DeviceWord(
        device_id=_device_id(payload, event),
        abnormal=True,
        event_time=_event_time(event),
        event_id=event.id,
        alarms=tuple(
            DeviceAlarm(a.alarm_id, _category(a.category), _severity(a.perceived_severity))
            for a in payload.alarms
        ),
        severity=_severity(payload.perceived_severity),
        rules_version=payload.rules_version,
        ticket_id=payload.ticket_id,
        changed_at=(
            payload.changed_at.ToDatetime(tzinfo=UTC) if payload.HasField("changed_at") else None
        ),
    )


def word_of_recovered(
    event: ReceivedEvent, payload: device_events_pb2.DeviceRecovered
) -> DeviceWord:
    return DeviceWord(
        device_id=_device_id(payload, event),
        abnormal=False,
        event_time=_event_time(event),
        event_id=event.id,
        rules_version=payload.rules_version,
        ticket_id=payload.ticket_id,
        changed_at=(
            payload.changed_at.ToDatetime(tzinfo=UTC) if payload.HasField("changed_at") else None
        ),
    )


def job_held(job: Job) -> provisioning_events_pb2.JobHeld:
    return provisioning_events_pb2.JobHeld(
        job_id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        reason_code=job.reason,
        alarm_id=job.alarm_id,
    )


class DeviceEvents:
    def __init__(self, clock: Clock, *, on_runnable: Callable[[], None]) -> None:
        self.clock = clock
        # Wakes the worker once a resumed job is committed.
        self.on_runnable = on_runnable

    def handlers(self) -> list[Handler]:
        return [
            Handler(device_events_pb2.DeviceAbnormal, self.on_device_abnormal),
            Handler(device_events_pb2.DeviceRecovered, self.on_device_recovered),
        ]

    async def on_device_abnormal(
        self, uow: Uow, event: ReceivedEvent, payload: device_events_pb2.DeviceAbnormal
    ) -> None:
        """Keeps the word; holds at once the device's running job no worker holds. A job with a
        step in flight is held when the worker commits that step (it reads this word)."""
        word = word_of_abnormal(event, payload)
        now = self.clock()
        if not await uow.repos.record_device_word(word, now):
            log.info("older device word ignored", device_id=word.device_id, event_id=event.id)
            return
        for job, taken in await uow.repos.jobs_on_device(word.device_id, now=now):
            if job.state is not JobState.RUNNING:
                continue
            if taken:
                log.info(
                    "device abnormal; job stops at its step boundary",
                    job_id=job.id,
                    step=job.step.value,
                    alarm_id=word.alarm_id,
                )
                continue
            if not device_health.hold_now(job, word, now):
                continue
            if not await uow.repos.save_untaken(job, was=JobState.RUNNING, now=now):
                # A worker took the job since it was read: try the event again.
                raise Unavailable(f"job {job.id} changed hands while its device turned abnormal")
            uow.emit(job_held(job), order_id=job.order_id, device_id=job.device_id)
            log.warning(
                "device abnormal; job held",
                job_id=job.id,
                step=job.step.value,
                alarm_id=job.alarm_id,
                detail=job.detail,
            )

    async def on_device_recovered(
        self, uow: Uow, event: ReceivedEvent, payload: device_events_pb2.DeviceRecovered
    ) -> None:
        """Keeps the word; resumes the device's job held for it, from the step it was held at.
        A device with no such job: nothing else changes."""
        word = word_of_recovered(event, payload)
        now = self.clock()
        if not await uow.repos.record_device_word(word, now):
            log.info("older device word ignored", device_id=word.device_id, event_id=event.id)
            return
        resumed = False
        for job, _taken in await uow.repos.jobs_on_device(word.device_id, now=now):
            if not device_health.resume(job, now):
                continue
            if not await uow.repos.save_untaken(job, was=JobState.HELD, now=now):
                raise Unavailable(f"job {job.id} changed while its device recovered")
            if job.state is not JobState.RUNNING:
                # A person holds the order too: the job now waits for their resume.
                log.info(
                    "device recovered; job stays held for the person holding its order",
                    job_id=job.id,
                    step=job.step.value,
                    held_by=job.person_hold_by,
                )
                continue
            resumed = True
            log.info(
                "device recovered; job resumes",
                job_id=job.id,
                step=job.step.value,
                recheck_fitness=job.recheck_fitness,
            )
        if resumed:
            uow.on_commit(self.on_runnable)
