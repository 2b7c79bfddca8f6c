"""The fallout queue against the real device fleet simulator (a separate process over gRPC) and
real NATS: a test still failing after the adjustment loop puts the job in the queue; an engineer
retries it (after the line is repaired), skips the test, rolls it back or aborts it; clerks
cannot; an action on a job not in fallout is refused and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def bearer(role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer dev-{role}"),)


CLERK, ENGINEER, MANAGER = bearer("clerk"), bearer("engineer"), bearer("manager")


@pytest_asyncio.fixture
async def fleet(simulator_processes: Any) -> str:
    """The fleet simulator; CPE-0012, CPE-0014 and CPE-0016 have a damaged line, which no
    setting fixes (the performance test fails whatever the adjustment loop does)."""
    damaged = ["CPE-0012:line_damaged", "CPE-0014:line_damaged", "CPE-0016:line_damaged"]
    return str(await simulator_processes.fleet(20, damaged))


async def agent(address: str, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(agent_pb2_grpc.DeviceAgentServiceStub(channel), method)(request)


async def call(address: str, method: str, request: Any, who: Any = ENGINEER) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return await getattr(stub, method)(request, metadata=who)


async def refused(address: str, method: str, request: Any, who: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(address, method, request, who)
    return caught.value


def field_violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


async def job_of(address: str, order_id: str) -> pb.ProvisioningJob:
    return (await call(address, "GetJob", pb.GetJobRequest(order_id=order_id), CLERK)).job


async def test_a_test_failing_after_the_loop_is_retried_by_an_engineer_to_completion(
    start_provisioning: Any, fleet: str, bus: Any
) -> None:
    running = await start_provisioning(device_agent_address=fleet)
    await bus.approve("ORD-FO-RETRY", "CPE-0012")
    held = await bus.wait_for_event("ORD-FO-RETRY", "provisioning.job_held", within=60)
    assert held.payload.reason_code == "TESTS_FAILED"
    job = await job_of(running.address, "ORD-FO-RETRY")
    # In the queue, with the device still on the job's configuration (nothing rolled back).
    assert job.state == pb.JOB_STATE_HELD and job.step == "test" and job.HasField("fallout_since")
    assert [c.operation for c in job.config_changes] == ["apply", "adjust"]
    listed = await call(running.address, "ListFallout", pb.ListFalloutRequest(), CLERK)
    [entry] = listed.entries
    assert (entry.job.id, entry.reason) == (job.id, "TESTS_FAILED")
    assert entry.age_seconds >= 0 and entry.texts["zh-CN"] == "调整后测试仍未通过"
    assert list(entry.actions) == ["retry", "skip", "rollback", "abort"]

    # A clerk may look, not act.
    for method, request in (
        ("RetryJob", pb.RetryJobRequest(job_id=job.id)),
        ("SkipTest", pb.SkipTestRequest(job_id=job.id, kind="performance", reason="n/a")),
    ):
        err = await refused(running.address, method, request, CLERK)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, method

    # The engineer repairs the line, then retries from the failed step: new rounds, new keys.
    await agent(
        fleet,
        "ClearFault",
        agent_pb2.ClearFaultRequest(device_id="CPE-0012", defect="line_damaged"),
    )
    retried = await call(running.address, "RetryJob", pb.RetryJobRequest(job_id=job.id))
    assert retried.job.fallout_retries == 1 and not retried.job.HasField("fallout_since")
    await bus.wait_for_event("ORD-FO-RETRY", "provisioning.customer_notified", within=60)
    done = await job_of(running.address, "ORD-FO-RETRY")
    assert done.state == pb.JOB_STATE_COMPLETED
    assert sorted({r.round for r in done.test_runs}) == [1, 2, 3]
    assert all(r.passed and r.round == 3 for r in done.test_results)
    counters = await agent(fleet, "GetCounters", agent_pb2.GetCountersRequest(device_id="CPE-0012"))
    assert counters.applies_by_key[f"{job.id}:configure"] == 1
    assert not (await call(running.address, "ListFallout", pb.ListFalloutRequest())).entries

    # Not in fallout any more: every action is refused and changes nothing.
    err = await refused(running.address, "RetryJob", pb.RetryJobRequest(job_id=job.id), ENGINEER)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await job_of(running.address, "ORD-FO-RETRY")).updated_at == done.updated_at


async def test_skip_rollback_and_abort_from_the_queue(
    start_provisioning: Any, fleet: str, bus: Any, tmp_path: Path
) -> None:
    # Two engineers (a skip is four-eyes): a tokens file with the usual development tokens'
    # names and principals, and a second engineer.
    tokens = {
        f"dev-{role}": {"subject": f"{role}-dev", "roles": [role]}
        for role in ("clerk", "engineer", "manager", "service")
    }
    tokens["engineer-li-token"] = {"subject": "engineer-li", "roles": ["engineer"]}
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    running = await start_provisioning(
        device_agent_address=fleet, auth_tokens_file=tokens_file, service_token="dev-service"
    )
    await bus.approve("ORD-FO-SKIP", "CPE-0014")
    await bus.approve("ORD-FO-ABORT", "CPE-0016")
    for order_id in ("ORD-FO-SKIP", "ORD-FO-ABORT"):
        await bus.wait_for_event(order_id, "provisioning.job_held", within=60)
    listed = await call(running.address, "ListFallout", pb.ListFalloutRequest(page_size=1))
    assert len(listed.entries) == 1 and listed.next_page_token
    rest = await call(
        running.address,
        "ListFallout",
        pb.ListFalloutRequest(page_size=1, page_token=listed.next_page_token),
    )
    assert len(rest.entries) == 1 and not rest.next_page_token
    assert listed.entries[0].since.ToDatetime() <= rest.entries[0].since.ToDatetime()

    skip = await job_of(running.address, "ORD-FO-SKIP")
    # No reason: INVALID_ARGUMENT naming the field; a manager may not skip; nothing changed.
    err = await refused(
        running.address,
        "SkipTest",
        pb.SkipTestRequest(job_id=skip.id, kind="performance", reason="  "),
        ENGINEER,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in field_violations(err)
    err = await refused(
        running.address,
        "SkipTest",
        pb.SkipTestRequest(job_id=skip.id, kind="performance", reason="line survey booked"),
        MANAGER,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await refused(
        running.address,
        "SkipTest",
        pb.SkipTestRequest(job_id=skip.id, kind="security", reason="n/a"),
        ENGINEER,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "kind" in field_violations(err)
    assert (await job_of(running.address, "ORD-FO-SKIP")).updated_at == skip.updated_at

    # Four-eyes: the first engineer asks; the job stays in the queue, the skip unapproved.
    request = pb.SkipTestRequest(job_id=skip.id, kind="performance", reason="line survey booked")
    asked = await call(running.address, "SkipTest", request)
    [record] = asked.job.skipped_tests
    assert (record.kind, record.reason, record.skipped_by, record.approved_by) == (
        "performance",
        "line survey booked",
        "engineer-dev",
        "",
    )
    assert asked.job.state == pb.JOB_STATE_HELD
    err = await refused(running.address, "SkipTest", request, ENGINEER)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "four-eyes" in (err.details() or "")
    # Another engineer approves: skipped, and the job goes on.
    approved = await call(
        running.address,
        "SkipTest",
        pb.SkipTestRequest(job_id=skip.id, kind="performance", reason="agreed"),
        (("authorization", "Bearer engineer-li-token"),),
    )
    [record] = approved.job.skipped_tests
    assert (record.skipped_by, record.approved_by) == ("engineer-dev", "engineer-li")
    passed = await bus.wait_for_event("ORD-FO-SKIP", "provisioning.tests_passed", within=30)
    outcome = {o.kind: o for o in passed.payload.outcomes}
    assert outcome["performance"].detail == (
        "skipped by engineer-dev, approved by engineer-li: line survey booked"
    )
    await bus.wait_for_event("ORD-FO-SKIP", "provisioning.customer_notified", within=60)
    assert (await job_of(running.address, "ORD-FO-SKIP")).state == pb.JOB_STATE_COMPLETED

    # Roll back (twice: the same rollback), then abort: the job fails, the order is told.
    abort = await job_of(running.address, "ORD-FO-ABORT")
    for _ in range(2):
        back = await call(running.address, "RollBackJob", pb.RollBackJobRequest(job_id=abort.id))
        assert back.job.state == pb.JOB_STATE_HELD and back.job.step == "configure"
        assert back.job.config_version == back.job.base_config_version == 1
    info = await agent(fleet, "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(device_id="CPE-0016"))
    assert info.info.config_version == 1
    err = await refused(running.address, "AbortJob", pb.AbortJobRequest(job_id=abort.id), ENGINEER)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in field_violations(err)
    ended = await call(
        running.address,
        "AbortJob",
        pb.AbortJobRequest(job_id=abort.id, reason="customer moved out"),
    )
    assert ended.job.state == pb.JOB_STATE_FAILED and ended.job.reason == "FALLOUT_ABORTED"
    failed = await bus.wait_for_event("ORD-FO-ABORT", "provisioning.job_failed", within=30)
    assert failed.payload.reason_code == "FALLOUT_ABORTED"
    assert failed.payload.detail == "aborted by engineer-dev: customer moved out"
    job = await job_of(running.address, "ORD-FO-ABORT")
    assert [c.operation for c in job.config_changes] == ["apply", "adjust", "rollback"]
    counters = await agent(fleet, "GetCounters", agent_pb2.GetCountersRequest(device_id="CPE-0016"))
    assert counters.applies_by_key[f"{abort.id}:rollback"] == 1
    for method, request in (
        ("RollBackJob", pb.RollBackJobRequest(job_id=abort.id)),
        ("AbortJob", pb.AbortJobRequest(job_id=abort.id, reason="again")),
    ):
        err = await refused(running.address, method, request, ENGINEER)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, method
    err = await refused(running.address, "RetryJob", pb.RetryJobRequest(job_id="nope"), ENGINEER)
    assert err.code() == grpc.StatusCode.NOT_FOUND
