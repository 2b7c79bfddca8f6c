"""Domain objects to protobuf messages of orderline.provisioning.v1."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.steps import JobState
from orderline_provisioning.domain.voucher import Voucher

JOB_STATES: dict[JobState, pb.JobState.ValueType] = {
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.HELD: pb.JOB_STATE_HELD,
    JobState.COMPLETED: pb.JOB_STATE_COMPLETED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
}
STATES_BY_PROTO = {v: k for k, v in JOB_STATES.items()}


def _ts(at: datetime | None) -> Timestamp:
    ts = Timestamp()
    if at is not None:
        ts.FromDatetime(at)
    return ts


def job_to_proto(job: Job) -> pb.ProvisioningJob:
    return pb.ProvisioningJob(
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
        test_results=[
            pb.TestResult(kind=r.kind, passed=r.passed, detail=r.detail) for r in job.test_results
        ],
        created_at=_ts(job.created_at),
        updated_at=_ts(job.updated_at),
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
