"""The automatic run of an approved order, end to end inside provisioning: NATS in, peers over
gRPC, provisioning.* events out on the PROVISIONING stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from orderline.agent.v1 import agent_pb2
from orderline.gateway.v1 import gateway_pb2
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc

CLERK = (("authorization", "Bearer dev-clerk"),)
HAPPY_PATH = [
    "provisioning.job_started",
    "provisioning.prechecks_passed",
    "provisioning.device_configured",
    "provisioning.tests_passed",
    "provisioning.service_activated",
    "provisioning.voucher_issued",
    "provisioning.customer_notified",
]


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        resp = await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)
        return resp.job


async def test_approved_order_runs_every_step_and_publishes_its_milestones_in_order(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    trace_id = await bus.approve(order_id, "CPE-0001")

    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    events = await bus.provisioning_events(order_id)
    assert [e.type for e in events] == HAPPY_PATH
    assert {e.order_id for e in events} == {order_id}
    assert {e.device_id for e in events} == {"CPE-0001"}
    # One trace: every step resumed under the context the approval arrived with.
    assert {e.trace_id for e in events} == {trace_id}

    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED and job.step == "done"
    assert [r.kind for r in job.test_results] == [
        "functional",
        "performance",
        "security",
        "environmental",
        "user_interface",
    ]
    assert all(r.passed for r in job.test_results)
    started, configured, tests, _, issued, notified = (e.payload for e in events[:1] + events[2:])
    assert started.job_id == job.id
    assert configured.config_version == 2
    assert len(tests.outcomes) == 5
    assert issued.voucher_id == job.voucher_id and job.voucher_id.startswith("AV-")
    assert (notified.channel, notified.delivery_id) == ("sms", "DLV-1")

    # Calls carry the order, the service token and the idempotency keys.
    assert peers.health.calls == [("CPE-0001", order_id, "Bearer dev-service")]
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert peers.agent.activations == [("CPE-0001", f"{job.id}:activate", True)]
    # Kept on the job: what each test measured, the configuration change with the version it
    # replaced, and the network's activation.
    assert all(r.measurements and r.findings and r.round == 1 for r in job.test_results)
    assert [r.kind for r in job.test_runs] == [r.kind for r in job.test_results]
    [change] = job.config_changes
    assert (change.operation, change.previous_version, change.config_version) == ("apply", 1, 2)
    assert change.template == "broadband-pppoe-v1" and change.settings["wan.vlan"] == "100"
    assert (job.base_config_version, job.config_version) == (1, 2)
    assert (job.activation.action, job.activation.activation_id) == ("activate", "NE-1")
    assert sorted(key for _, _, key in peers.agent.tests) == sorted(
        f"{job.id}:test:{kind}"
        for kind in ("functional", "performance", "security", "environmental", "user_interface")
    )
    # Intake is asked for the customer at activation (the voucher, masked) and to notify.
    assert peers.intake.auth == ["Bearer dev-service"] * 2
    [sms] = peers.gateway.sends
    assert sms.idempotency_key == f"{job.id}:notify"
    assert (sms.channel, sms.to, sms.locale) == (gateway_pb2.CHANNEL_SMS, "+8613800138000", "zh-CN")
    assert job.voucher_id in sms.text and "已开通" in sms.text

    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        vouchers = provisioning_pb2_grpc.VoucherServiceStub(channel)
        request = pb.GetVoucherRequest(voucher_id=job.voucher_id)
        voucher = (await vouchers.GetVoucher(request, metadata=CLERK)).voucher
        assert voucher.order_id == order_id and voucher.device_id == "CPE-0001"
        assert voucher.texts["zh-CN"].startswith(f"业务开通凭证 {job.voucher_id}")
        assert job.voucher_id in voucher.texts["en"]
        ok = await vouchers.VerifyVoucher(
            pb.VerifyVoucherRequest(voucher_id=job.voucher_id, order_id=order_id), metadata=CLERK
        )
        assert (ok.valid, ok.reason) == (True, "")
        other = await vouchers.VerifyVoucher(
            pb.VerifyVoucherRequest(voucher_id=job.voucher_id, order_id="ORD-OTHER"),
            metadata=CLERK,
        )
        assert (other.valid, other.reason) == (False, "ORDER_MISMATCH")


async def test_same_approval_twice_makes_one_job_and_one_configure(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    await bus.approve(order_id, "CPE-0002")
    await bus.approve(order_id, "CPE-0002")  # another event id, the same order

    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    await bus.approvals_settled()
    events = await bus.provisioning_events(order_id)
    assert [e.type for e in events] == HAPPY_PATH
    job = await get_job(provisioning.address, order_id)
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert peers.agent.apply_calls == [f"{job.id}:configure"]
    assert len(peers.gateway.sends) == 1


async def test_abnormal_device_holds_the_job_with_its_alarm(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    peers.health.abnormal("CPE-0003", "ALM-0042")
    await bus.approve(order_id, "CPE-0003")

    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert (held.payload.reason_code, held.payload.alarm_id) == ("DEVICE_ABNORMAL", "ALM-0042")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_HELD and job.step == "prechecks"
    assert (job.reason, job.alarm_id) == ("DEVICE_ABNORMAL", "ALM-0042")
    # The order stops there: nothing is done to the device.
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.job_held",
    ]
    assert peers.agent.apply_calls == []


async def test_failing_test_goes_to_fallout_then_an_abort_rolls_back_and_fails_the_job(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    peers.agent.fail_test("CPE-0004", agent_pb2.TEST_KIND_SECURITY)
    await bus.approve(order_id, "CPE-0004")

    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    assert held.payload.reason_code == "TESTS_FAILED"
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_HELD and job.reason == "TESTS_FAILED"
    assert "security" in job.detail and job.HasField("fallout_since")
    assert [r.kind for r in job.test_results if not r.passed] == ["security"]
    # In the queue the device keeps the job's configuration until a person decides.
    assert peers.agent.rollbacks == []
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        await provisioning_pb2_grpc.ProvisioningServiceStub(channel).AbortJob(
            pb.AbortJobRequest(job_id=job.id, reason="line fault, new visit booked"),
            metadata=(("authorization", "Bearer dev-engineer"),),
        )
    failed = await bus.wait_for_event(order_id, "provisioning.job_failed")
    assert failed.payload.reason_code == "FALLOUT_ABORTED"
    # The configuration this job applied (version 2) is rolled back to the one before.
    assert peers.agent.rollbacks == [("CPE-0004", f"{job.id}:rollback", 1)]
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.adjustment_applied",  # the loop's one try, before the fallout
        "provisioning.job_held",
        "provisioning.job_failed",
    ]
    assert peers.gateway.sends == []


async def test_transient_failures_are_retried_and_the_customer_is_notified_once(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Callable[..., Awaitable[None]]
) -> None:
    peers.agent.unavailable_applies = 2
    peers.gateway.fail_first = 3
    await bus.approve(order_id, "CPE-0005")

    notified = await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert job.attempts == 5  # 2 configure + 3 notify tries failed, none was fatal
    assert peers.agent.applies_by_key == {f"{job.id}:configure": 1}
    assert len(peers.gateway.sends) == 4
    assert {s.idempotency_key for s in peers.gateway.sends} == {f"{job.id}:notify"}
    assert peers.gateway.deliveries == {f"{job.id}:notify": notified.payload.delivery_id}
    events = await bus.provisioning_events(order_id)
    assert [e.type for e in events] == HAPPY_PATH


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_approval_without_a_device_is_dead_lettered_and_makes_no_job(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    await bus.approve(order_id, "")
    letter = await bus.dead_letter(within=15)
    assert letter.consumer == "provisioning" and "names no device" in letter.reason
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await bus.provisioning_events(order_id) == []
