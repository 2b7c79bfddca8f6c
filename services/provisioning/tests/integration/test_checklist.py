"""The pre-operation checklist over gRPC: each failed item stops the job before the device is
touched (the agent sees no ApplyConfig) and shows on the job; certifications are managed by
RPC; and one job at a time per device (a second job waits, then runs)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_devtools.waiting import eventually

CLERK = (("authorization", "Bearer dev-clerk"),)
MANAGER = (("authorization", "Bearer dev-manager"),)
ENGINEER = (("authorization", "Bearer dev-engineer"),)
ITEMS = ["device_fit", "device_model", "firmware", "work_instruction", "operator_certified"]


async def get_job(address: str, order_id: str) -> pb.ProvisioningJob:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return (await stub.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)).job


def checklist(job: pb.ProvisioningJob) -> dict[str, pb.ChecklistItem]:
    return {i.item: i for i in job.checklist}


async def held_job(bus: Any, address: str, order_id: str) -> pb.ProvisioningJob:
    held = await bus.wait_for_event(order_id, "provisioning.job_held")
    job = await get_job(address, order_id)
    assert job.state == pb.JOB_STATE_HELD and job.step == "prechecks"
    assert held.payload.reason_code == job.reason
    return job


async def test_a_passed_checklist_is_shown_on_the_job_item_by_item(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    await bus.approve(order_id, "CPE-0101")
    await bus.wait_for_event(order_id, "provisioning.customer_notified")
    job = await get_job(provisioning.address, order_id)
    assert [i.item for i in job.checklist] == ITEMS
    assert {i.result for i in job.checklist} == {pb.CHECKLIST_RESULT_PASSED}
    items = checklist(job)
    assert items["work_instruction"].evidence["reference"] == "WI-BB-INSTALL@3.2"
    assert items["firmware"].evidence["firmware"] == "V5R020C10S120"
    assert items["operator_certified"].evidence["operator"] == "provisioning" == job.operator
    assert items["device_model"].texts["zh-CN"] == "设备型号 HG8245H5 ONT 适用于宽带新装"
    # One GetDeviceInfo for the checklist, and one as the activation asks whether the device
    # still runs the job's configuration (README, "A device that lost its configuration").
    assert peers.agent.info_calls == ["CPE-0101", "CPE-0101"]


@pytest.mark.parametrize(
    ("setup", "reason", "item"),
    [
        ("unknown", "UNKNOWN_DEVICE", "device_model"),
        ("set_top_box", "DEVICE_MODEL_NOT_ALLOWED", "device_model"),
        ("old_firmware", "FIRMWARE_TOO_OLD", "firmware"),
    ],
)
async def test_a_device_that_fails_the_checklist_is_never_configured(
    provisioning: Any, bus: Any, peers: Any, order_id: str, setup: str, reason: str, item: str
) -> None:
    device = "CPE-0102"
    if setup == "unknown":
        peers.agent.unknown.add(device)
    elif setup == "set_top_box":
        peers.agent.devices[device] = ("B860AV2.1 IPTV STB", "V81511329.1020")
    else:
        peers.agent.devices[device] = ("HG8245H5 ONT", "V5R020C10S099")
    await bus.approve(order_id, device)

    job = await held_job(bus, provisioning.address, order_id)
    assert job.reason == reason
    failed = checklist(job)[item]
    assert failed.result == pb.CHECKLIST_RESULT_FAILED and failed.reason == reason
    assert failed.texts["en"] and failed.texts["zh-CN"]
    assert peers.agent.apply_calls == [] and peers.agent.touches == []
    if setup == "unknown":
        # Held at once as unknown, not retried as a device without telemetry.
        assert peers.health.calls == []
        assert checklist(job)["device_fit"].result == pb.CHECKLIST_RESULT_SKIPPED
        assert failed.texts["en"].startswith("unknown device")


async def test_an_uncertified_operator_stops_the_job_until_a_manager_grants_it(
    start_provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    # Nobody certified: the default outside the local stack.
    running = await start_provisioning(provisioning_seed_certifications="")
    await bus.approve(order_id, "CPE-0103", business_type="iptv", plan="iptv-basic")
    job = await held_job(bus, running.address, order_id)
    assert job.reason == "OPERATOR_NOT_CERTIFIED"
    item = checklist(job)["operator_certified"]
    assert item.texts["en"] == "operator provisioning is not certified for IPTV"
    assert item.texts["zh-CN"] == "操作人员 provisioning 不具备网络电视作业资质"
    assert peers.agent.apply_calls == []

    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        request = pb.GrantCertificationRequest(principal="provisioning", business_type="iptv")
        # Managers grant; engineers do not certify anyone.
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.GrantCertification(request, metadata=ENGINEER)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        granted = (await stub.GrantCertification(request, metadata=MANAGER)).certification
        assert (granted.principal, granted.granted_by) == ("provisioning", "manager-dev")
        listed = await stub.ListCertifications(
            pb.ListCertificationsRequest(principal="provisioning"), metadata=ENGINEER
        )
        assert [c.business_type for c in listed.certifications] == ["iptv"]

    # Certified now: the next iptv job passes.
    await bus.approve(order_id + "-2", "CPE-0104", business_type="iptv", plan="iptv-basic")
    await bus.wait_for_event(order_id + "-2", "provisioning.customer_notified")


async def test_certifications_are_revoked_with_a_reason_and_never_by_their_holder(
    provisioning: Any,
) -> None:
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        # The seed is written as the worker starts, which may be just after SERVING.
        seeded = await eventually(
            lambda: stub.ListCertifications(
                pb.ListCertificationsRequest(business_type="dedicated_line"), metadata=MANAGER
            ),
            lambda reply: len(reply.certifications) > 0,
            10,
            "the seeded certifications",
        )
        assert [(c.principal, c.granted_by) for c in seeded.certifications] == [
            ("provisioning", "seed")
        ]
        revoke = pb.RevokeCertificationRequest(principal="provisioning", business_type="iptv")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.RevokeCertification(revoke, metadata=MANAGER)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        revoke.reason = "training lapsed"
        revoked = (await stub.RevokeCertification(revoke, metadata=MANAGER)).certification
        assert revoked.revoked_by == "manager-dev" and revoked.revoke_reason == "training lapsed"
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await stub.RevokeCertification(revoke, metadata=MANAGER)
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        active = await stub.ListCertifications(
            pb.ListCertificationsRequest(principal="provisioning"), metadata=MANAGER
        )
        assert "iptv" not in [c.business_type for c in active.certifications]
        everything = await stub.ListCertifications(
            pb.ListCertificationsRequest(principal="provisioning", include_revoked=True),
            metadata=MANAGER,
        )
        assert "iptv" in [c.business_type for c in everything.certifications]
        own = pb.GrantCertificationRequest(principal="manager-dev", business_type="iptv")
        with pytest.raises(grpc.aio.AioRpcError) as self_grant:
            await stub.GrantCertification(own, metadata=MANAGER)
        assert self_grant.value.code() == grpc.StatusCode.PERMISSION_DENIED
        unknown = pb.GrantCertificationRequest(principal="engineer-dev", business_type="moon")
        with pytest.raises(grpc.aio.AioRpcError) as bad_type:
            await stub.GrantCertification(unknown, metadata=MANAGER)
        assert bad_type.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_two_jobs_for_one_device_never_configure_it_at_once(
    provisioning: Any, bus: Any, peers: Any, order_id: str, until: Any
) -> None:
    device = "CPE-0105"
    first, second = order_id + "-A", order_id + "-B"
    peers.agent.apply_gate = asyncio.Event()
    await bus.approve(first, device)
    # The first job is configuring the device (its ApplyConfig is held at the agent).

    async def applies() -> list[str]:
        return list(peers.agent.apply_calls)

    await until(applies, within=20, what="the first job's ApplyConfig")
    await bus.approve(second, device)
    await bus.wait_for_event(second, "provisioning.job_started")
    first_job = await get_job(provisioning.address, first)

    # The second job waits for the device, running (not failed), and says for which job.
    waiting = await get_job(provisioning.address, second)
    assert waiting.state == pb.JOB_STATE_RUNNING and waiting.step == "prechecks"
    assert waiting.waiting_for_job_id == first_job.id

    peers.agent.apply_gate.set()
    await bus.wait_for_event(first, "provisioning.customer_notified")
    await bus.wait_for_event(second, "provisioning.customer_notified")
    second_job = await get_job(provisioning.address, second)
    assert second_job.state == pb.JOB_STATE_COMPLETED and not second_job.waiting_for_job_id

    # Every call of the first job on the device came before any call of the second.
    owners = [key.split(":", 1)[0] for dev, key in peers.agent.touches if dev == device]
    assert owners == sorted(owners, key=[first_job.id, second_job.id].index)
    assert set(owners) == {first_job.id, second_job.id}


async def test_an_aborted_job_releases_its_device_to_the_next_one(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    from orderline.agent.v1 import agent_pb2

    device = "CPE-0106"
    peers.agent.fail_test(device, agent_pb2.TEST_KIND_SECURITY)
    await bus.approve(order_id + "-A", device)
    # Into the fallout queue (the device keeps the job's configuration), then aborted.
    held = await bus.wait_for_event(order_id + "-A", "provisioning.job_held")
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        await provisioning_pb2_grpc.ProvisioningServiceStub(channel).AbortJob(
            pb.AbortJobRequest(job_id=held.payload.job_id, reason="line fault"),
            metadata=(("authorization", "Bearer dev-engineer"),),
        )
    await bus.wait_for_event(order_id + "-A", "provisioning.job_failed")
    peers.agent.failing_kinds.clear()
    await bus.approve(order_id + "-B", device)
    await bus.wait_for_event(order_id + "-B", "provisioning.customer_notified")


async def test_a_job_held_at_the_checklist_does_not_keep_the_device(
    provisioning: Any, bus: Any, peers: Any, order_id: str
) -> None:
    device = "CPE-0107"
    # An IPTV set-top box: a broadband job is held at its checklist, an IPTV job then runs.
    peers.agent.devices[device] = ("B860AV2.1 IPTV STB", "V81511329.1020")
    await bus.approve(order_id + "-A", device)
    await bus.wait_for_event(order_id + "-A", "provisioning.job_held")
    await bus.approve(order_id + "-B", device, business_type="iptv", plan="iptv-basic")
    await bus.wait_for_event(order_id + "-B", "provisioning.customer_notified")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_replicas_never_configure_one_device_at_once(
    start_provisioning: Any, bus: Any, peers: Any
) -> None:
    await start_provisioning()
    await start_provisioning()
    orders = [f"ORD-SHARED-{i}" for i in range(6)]
    # Six jobs, two devices: at most one job per device at any time across both replicas.
    for i, order in enumerate(orders):
        await bus.approve(order, f"CPE-03{i % 2:02d}")
    for order in orders:
        await bus.wait_for_event(order, "provisioning.customer_notified", within=60)
    for device in ("CPE-0300", "CPE-0301"):
        owners = [key.split(":", 1)[0] for dev, key in peers.agent.touches if dev == device]
        # Each job's calls form one unbroken run: no other job's call in between.
        runs = [o for i, o in enumerate(owners) if i == 0 or owners[i - 1] != o]
        assert len(runs) == len(set(owners)) == 3
