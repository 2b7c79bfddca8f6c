"""Domain objects to protobuf messages of orderline.provisioning.v1."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline_catalogue import load_catalogue
from orderline_provisioning.domain import fallout, person_hold
from orderline_provisioning.domain.certification import Certification
from orderline_provisioning.domain.checklist import ChecklistItem, Result, texts
from orderline_provisioning.domain.config import ConfigHistoryEntry, ConfigRecord, history_entries
from orderline_provisioning.domain.confirmation import Confirmation, Feedback
from orderline_provisioning.domain.job import Job, SkippedTest, TestResult
from orderline_provisioning.domain.judging import texts as result_texts
from orderline_provisioning.domain.steps import JobState
from orderline_provisioning.domain.voucher import Voucher
from orderline_runtime.timestamps import set_timestamp

JOB_STATES: dict[JobState, pb.JobState.ValueType] = {
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.HELD: pb.JOB_STATE_HELD,
    JobState.COMPLETED: pb.JOB_STATE_COMPLETED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
STATES_BY_PROTO = {v: k for k, v in JOB_STATES.items()}
CHECKLIST_RESULTS: dict[Result, pb.ChecklistResult.ValueType] = {
    Result.PASSED: pb.CHECKLIST_RESULT_PASSED,
    Result.FAILED: pb.CHECKLIST_RESULT_FAILED,
    Result.PENDING: pb.CHECKLIST_RESULT_PENDING,
    Result.SKIPPED: pb.CHECKLIST_RESULT_SKIPPED,
}


def _ts(at: datetime | None) -> Timestamp:
    ts = Timestamp()
    if at is not None:
        set_timestamp(ts, at)  # FromDatetime's value, 6x cheaper
    return ts


def checklist_item_to_proto(item: ChecklistItem, business_type: str) -> pb.ChecklistItem:
    return pb.ChecklistItem(
        item=item.item.value,
        result=CHECKLIST_RESULTS[item.result],
        reason=item.reason,
        evidence=dict(item.evidence),
        texts=texts(item, business_type),
        checked_at=_ts(item.checked_at),
    )


def certification_to_proto(cert: Certification) -> pb.Certification:
    msg = pb.Certification(
        principal=cert.principal,
        business_type=cert.business_type,
        granted_at=_ts(cert.granted_at),
        granted_by=cert.granted_by,
        revoked_by=cert.revoked_by,
        revoke_reason=cert.revoke_reason,
    )
    if cert.revoked_at is not None:
        msg.revoked_at.CopyFrom(_ts(cert.revoked_at))
    return msg


def test_result_to_proto(result: TestResult) -> pb.TestResult:
    msg = pb.TestResult(
        kind=result.kind,
        passed=result.passed,
        detail=result.detail,
        measurements=dict(result.measurements),
        round=result.round,
        invalid=result.invalid,
        texts=result_texts(result, load_catalogue().measurements) if result.findings else {},
        adjustment=dict(result.adjustment),
    )
    for f in result.findings:
        finding = msg.findings.add(measurement=f.measurement, problem=f.problem)
        if f.value is not None:
            finding.value = f.value
        if f.min is not None:
            finding.min = f.min
        if f.max is not None:
            finding.max = f.max
    return msg


def config_change_to_proto(
    record: ConfigRecord, rolled_back_by: ConfigRecord | None = None
) -> pb.ConfigChange:
    msg = pb.ConfigChange(
        operation=record.operation.value,
        idempotency_key=record.idempotency_key,
        config_version=record.config_version,
        previous_version=record.previous_version,
        template=record.template,
        settings=dict(record.settings),
        recorded_at=_ts(record.recorded_at),
        job_id=record.job_id,
        order_id=record.order_id,
    )
    if rolled_back_by is not None:
        msg.rolled_back = True
        msg.rolled_back_by_key = rolled_back_by.idempotency_key
        msg.rolled_back_at.CopyFrom(_ts(rolled_back_by.recorded_at))
    return msg


def history_entry_to_proto(entry: ConfigHistoryEntry) -> pb.ConfigChange:
    return config_change_to_proto(entry.record, entry.rolled_back_by)


CUSTOMER_CHANNELS = {
    "call": pb.CUSTOMER_CHANNEL_CALL,
    "sms": pb.CUSTOMER_CHANNEL_SMS,
    "visit": pb.CUSTOMER_CHANNEL_VISIT,
}
CUSTOMER_CHANNELS_BY_PROTO = {v: k for k, v in CUSTOMER_CHANNELS.items()}


def confirmation_to_proto(c: Confirmation) -> pb.ActivationConfirmation:
    return pb.ActivationConfirmation(
        job_id=c.job_id,
        order_id=c.order_id,
        channel=CUSTOMER_CHANNELS.get(c.channel, pb.CUSTOMER_CHANNEL_UNSPECIFIED),
        confirmed_by=c.confirmed_by,
        confirmed_at=_ts(c.confirmed_at),
    )


def feedback_to_proto(f: Feedback) -> pb.CustomerFeedback:
    return pb.CustomerFeedback(
        job_id=f.job_id,
        order_id=f.order_id,
        score=f.score,
        comment=f.comment,
        channel=CUSTOMER_CHANNELS.get(f.channel, pb.CUSTOMER_CHANNEL_UNSPECIFIED),
        recorded_by=f.recorded_by,
        recorded_at=_ts(f.recorded_at),
    )


def job_to_proto(
    job: Job,
    waiting_for_job_id: str = "",
    *,
    runs: Sequence[TestResult] = (),
    configs: Sequence[ConfigRecord] = (),
    confirmation: Confirmation | None = None,
    feedback: Feedback | None = None,
) -> pb.ProvisioningJob:
    msg = pb.ProvisioningJob(
        checklist=[checklist_item_to_proto(i, job.business_type) for i in job.checklist],
        operator=job.operator,
        waiting_for_job_id=waiting_for_job_id,
        id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        business_type=job.business_type,
        state=JOB_STATES[job.state],
        step=job.step.value,
        reason=job.reason,
        alarm_id=job.alarm_id,
        voucher_id=job.voucher_id,
        attempts=job.attempts,
        test_results=[test_result_to_proto(r) for r in job.test_results],
        created_at=_ts(job.created_at),
        updated_at=_ts(job.updated_at),
        config_version=job.config_version or 0,
        base_config_version=job.base_config_version or 0,
        test_runs=[test_result_to_proto(r) for r in runs],
        # A job's own rollback is among its records: each change shows whether it was undone.
        config_changes=[history_entry_to_proto(e) for e in history_entries(configs, configs)],
        detail=person_hold.shown_detail(job),
        fallout_retries=job.fallout_retries,
        skipped_tests=[_skipped(t) for t in job.skipped_tests.values()],
    )
    if job.fallout_at is not None:
        msg.fallout_since.CopyFrom(_ts(job.fallout_at))
    if job.cancellation_id:
        msg.cancellation.CopyFrom(
            pb.JobCancellation(
                cancellation_id=job.cancellation_id,
                reason_code=job.cancel_reason,
                requested_at=_ts(job.cancel_requested_at),
                state=job.cancellation_state,
                decided_at=_ts(job.cancel_decided_at),
                rolled_back=job.rolled_back_to is not None,
                rolled_back_to=job.rolled_back_to or 0,
                detail=job.detail if job.state is JobState.CANCELLED else job.compensation,
            )
        )
    if job.activation_id:
        msg.activation.CopyFrom(
            pb.ServiceActivation(
                action=job.network_action,
                activation_id=job.activation_id,
                activated_at=_ts(job.activated_at),
            )
        )
    if confirmation is not None:
        msg.confirmation.CopyFrom(confirmation_to_proto(confirmation))
    if feedback is not None:
        msg.feedback.CopyFrom(feedback_to_proto(feedback))
    return msg


def fallout_entry_to_proto(job: Job, now: datetime) -> pb.FalloutEntry:
    since = job.fallout_at or job.updated_at or job.created_at
    return pb.FalloutEntry(
        job=job_to_proto(job),
        since=_ts(since),
        age_seconds=max(0, int((now - since).total_seconds())),
        reason=job.reason,
        texts=fallout.texts(job.reason),
        actions=fallout.actions(job),
    )


def voucher_to_proto(voucher: Voucher) -> pb.Voucher:
    return pb.Voucher(
        id=voucher.id,
        order_id=voucher.order_id,
        device_id=voucher.device_id,
        business_type=voucher.business_type,
        issued_at=_ts(voucher.issued_at),
        texts=dict(voucher.texts),
        envelope=voucher.envelope,
        key_id=voucher.key_id,
    )


def _skipped(test: SkippedTest) -> pb.SkippedTest:
    msg = pb.SkippedTest(
        kind=test.kind,
        reason=test.reason,
        skipped_by=test.by,
        skipped_at=_ts(test.at),
        approved_by=test.approved_by,
    )
    if test.approved_at is not None:
        msg.approved_at.CopyFrom(_ts(test.approved_at))
    return msg
