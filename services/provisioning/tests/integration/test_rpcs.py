"""ProvisioningService and VoucherService at the edge: bad input, unknown keys, tokens, roles,
and paging through jobs."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


CLERK = bearer("dev-clerk")


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                assert v.field not in out, f"two violations for {v.field}"
                out[v.field] = v.description
    return out


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


async def fails(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# Validation and auth happen before any database access: one database is enough.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_bad_requests_are_invalid_argument_with_one_violation_per_bad_field(
    provisioning: Any,
) -> None:
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        vouchers = provisioning_pb2_grpc.VoucherServiceStub(channel)
        cases: list[tuple[Any, dict[str, str]]] = [
            (jobs.GetJob(pb.GetJobRequest(), metadata=CLERK), {"job_id": "required"}),
            (
                jobs.GetJob(pb.GetJobRequest(job_id="j", order_id="o"), metadata=CLERK),
                {"order_id": "not both"},
            ),
            (
                jobs.ListJobs(
                    pb.ListJobsRequest(page_size=501, page_token="garbage!", state=99),  # type: ignore[arg-type]
                    metadata=CLERK,
                ),
                {"page_size": "0..500", "page_token": "not a page token", "state": "unknown"},
            ),
            (jobs.ListJobs(pb.ListJobsRequest(page_size=-1), metadata=CLERK), {"page_size": ""}),
            (vouchers.GetVoucher(pb.GetVoucherRequest(), metadata=CLERK), {"voucher_id": ""}),
            (
                vouchers.GetVoucher(pb.GetVoucherRequest(voucher_id="AV-123"), metadata=CLERK),
                {"voucher_id": "AV-"},
            ),
            (
                vouchers.VerifyVoucher(pb.VerifyVoucherRequest(voucher_id="x"), metadata=CLERK),
                {"voucher_id": "AV-"},
            ),
        ]
        for call, expected in cases:
            err = await fails(call)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            got = violations(err)
            assert set(got) == set(expected), got
            for name, words in expected.items():
                assert words in got[name], (name, got[name])


async def test_unknown_job_and_voucher_are_not_found(provisioning: Any) -> None:
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        vouchers = provisioning_pb2_grpc.VoucherServiceStub(channel)
        for call in (
            jobs.GetJob(pb.GetJobRequest(job_id="no-such-job"), metadata=CLERK),
            jobs.GetJob(pb.GetJobRequest(order_id="ORD-NONE"), metadata=CLERK),
        ):
            err = await fails(call)
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert reason(err) == "JOB_NOT_FOUND"
        err = await fails(
            vouchers.GetVoucher(pb.GetVoucherRequest(voucher_id="AV-AAAAAAAAAAAA"), metadata=CLERK)
        )
        assert (err.code(), reason(err)) == (grpc.StatusCode.NOT_FOUND, "VOUCHER_NOT_FOUND")
        # Verifying answers rather than fails: an unknown voucher is simply not valid.
        verdict = await vouchers.VerifyVoucher(
            pb.VerifyVoucherRequest(voucher_id="AV-AAAAAAAAAAAA", order_id="ORD-1"),
            metadata=CLERK,
        )
        assert (verdict.valid, verdict.reason) == (False, "VOUCHER_NOT_FOUND")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_calls_need_a_token_and_a_permitted_role(provisioning: Any) -> None:
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        vouchers = provisioning_pb2_grpc.VoucherServiceStub(channel)
        calls = {
            "GetJob": lambda md: jobs.GetJob(pb.GetJobRequest(job_id="j"), metadata=md),
            "ListJobs": lambda md: jobs.ListJobs(pb.ListJobsRequest(), metadata=md),
            "GetVoucher": lambda md: vouchers.GetVoucher(
                pb.GetVoucherRequest(voucher_id="AV-AAAAAAAAAAAA"), metadata=md
            ),
            "VerifyVoucher": lambda md: vouchers.VerifyVoucher(
                pb.VerifyVoucherRequest(voucher_id="AV-AAAAAAAAAAAA", order_id="o"), metadata=md
            ),
        }
        for name, call in calls.items():
            err = await fails(call(()))
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, name
            err = await fails(call(bearer("not-a-token")))
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, name
            for role in ("reviewer", "maintenance"):
                err = await fails(call(bearer(f"dev-{role}")))
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (name, role)
                assert reason(err) == "ROLE_NOT_PERMITTED"
        for role in ("clerk", "engineer", "auditor", "manager", "service"):
            resp = await calls["ListJobs"](bearer(f"dev-{role}"))
            assert isinstance(resp, pb.ListJobsResponse), role


async def test_list_jobs_pages_through_every_job_and_filters_by_state(
    provisioning: Any, bus: Any, peers: Any
) -> None:
    peers.health.abnormal("CPE-0099", "ALM-9")
    orders = [f"ORD-PAGE-{i}" for i in range(5)]
    for i, order in enumerate(orders):
        await bus.approve(order, "CPE-0099" if i == 2 else f"CPE-01{i:02d}")
    for i, order in enumerate(orders):
        final = "provisioning.job_held" if i == 2 else "provisioning.customer_notified"
        await bus.wait_for_event(order, final)

    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            resp = await stub.ListJobs(
                pb.ListJobsRequest(page_size=2, page_token=token), metadata=CLERK
            )
            pages += 1
            assert len(resp.jobs) <= 2
            seen += [j.order_id for j in resp.jobs]
            token = resp.next_page_token
            if not token:
                break
        assert pages == 3
        assert sorted(seen) == sorted(orders) and len(seen) == len(set(seen))

        held = await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_HELD), metadata=CLERK)
        assert [(j.order_id, j.alarm_id) for j in held.jobs] == [("ORD-PAGE-2", "ALM-9")]
        done = await stub.ListJobs(
            pb.ListJobsRequest(state=pb.JOB_STATE_COMPLETED, page_size=500), metadata=CLERK
        )
        assert len(done.jobs) == 4 and not done.next_page_token
