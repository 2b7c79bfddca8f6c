"""A device's configuration history through real gRPC (ListDeviceConfigurations) on both
databases: every change jobs made to the device, versioned, newest first, the customer's
number masked, and each apply or adjustment that its job's rollback undid marked so; pages,
roles and bad requests."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.agent.v1 import agent_pb2
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_catalogue import load_catalogue

DEVICE = "CPE-0301"


def bearer(role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer dev-{role}"),)


async def call(address: str, method: str, request: Any, role: str = "engineer") -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        return await getattr(stub, method)(request, metadata=bearer(role))


async def history(address: str, device_id: str, **kwargs: Any) -> list[pb.ConfigChange]:
    """Every page of the device's history, in the order the pages give it."""
    out: list[pb.ConfigChange] = []
    token = ""
    while True:
        reply = await call(
            address,
            "ListDeviceConfigurations",
            pb.ListDeviceConfigurationsRequest(device_id=device_id, page_token=token, **kwargs),
        )
        out += reply.configurations
        token = reply.next_page_token
        if not token:
            return out


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


async def test_a_devices_history_is_every_versioned_change_newest_first_with_its_rollbacks(
    provisioning: Any, bus: Any, peers: Any
) -> None:
    address = provisioning.address
    # A fixed line: the template carries the customer's number, recorded masked.
    await bus.approve("ORD-HIST-1", DEVICE, business_type="fixed_line", plan="voice-basic")
    await bus.wait_for_event("ORD-HIST-1", "provisioning.customer_notified")
    first = (await call(address, "GetJob", pb.GetJobRequest(order_id="ORD-HIST-1"))).job

    # A second order for the device whose performance test fails whatever is adjusted: after
    # the adjustment loop it waits in the fallout queue, and an engineer rolls it back.
    peers.agent.fail_test(DEVICE, agent_pb2.TEST_KIND_PERFORMANCE)
    await bus.approve("ORD-HIST-2", DEVICE, plan="500M")
    held = await bus.wait_for_event("ORD-HIST-2", "provisioning.job_held")
    assert held.payload.reason_code == "TESTS_FAILED"
    second = (await call(address, "GetJob", pb.GetJobRequest(order_id="ORD-HIST-2"))).job
    await call(address, "RollBackJob", pb.RollBackJobRequest(job_id=second.id))

    changes = await history(address, DEVICE)
    assert [(c.job_id, c.operation) for c in changes] == [
        (second.id, "rollback"),
        *[(second.id, "adjust")] * (len(changes) - 3),
        (second.id, "apply"),
        (first.id, "apply"),
    ]
    assert len(changes) >= 4  # at least one adjustment was applied
    assert {c.order_id for c in changes} == {"ORD-HIST-1", "ORD-HIST-2"}
    # Versioned as the device numbered them: each change replaced the one before it, and the
    # rollback returned the device to the version the second job found.
    oldest_first = changes[::-1]
    assert oldest_first[0].previous_version == 1
    for before, after in pairwise(oldest_first):
        assert after.previous_version == before.config_version
    rollback = changes[0]
    assert rollback.config_version == first.config_version and not rollback.settings
    # Every change of the rolled-back job is marked undone by its rollback; the first job's
    # configuration is what the device runs again.
    for c in changes[1:-1]:
        assert c.rolled_back and c.rolled_back_by_key == rollback.idempotency_key
        assert c.rolled_back_at == rollback.recorded_at
    assert not changes[0].rolled_back and not changes[-1].rolled_back
    # The idempotency key each call carried, and the settings with the number masked.
    assert changes[-1].idempotency_key == f"{first.id}:configure"
    assert changes[-2].idempotency_key == f"{second.id}:configure"
    assert changes[-1].settings["voice.number"] == "+86138****8000"
    assert changes[-1].template == load_catalogue().get("fixed_line").config_template  # type: ignore[union-attr]
    assert all(c.recorded_at.seconds for c in changes)
    recorded = [c.recorded_at.ToDatetime() for c in changes]
    assert recorded == sorted(recorded, reverse=True)
    # What the device says it applied: once per key.
    assert all(peers.agent.applies_by_key[c.idempotency_key] == 1 for c in changes)
    # The job shows the same marks on its own changes.
    second = (await call(address, "GetJob", pb.GetJobRequest(job_id=second.id))).job
    assert [c.rolled_back for c in second.config_changes] == [True] * (
        len(second.config_changes) - 1
    ) + [False]

    # One at a time: the same records, in the same order, page after page.
    assert [c.idempotency_key for c in await history(address, DEVICE, page_size=1)] == [
        c.idempotency_key for c in changes
    ]
    # A device no job touched has no history (the fleet, not provisioning, knows devices).
    assert await history(address, "CPE-9999") == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_bad_requests_and_roles(provisioning: Any, bus: Any) -> None:
    address = provisioning.address
    await bus.approve("ORD-HIST-3", DEVICE)
    await bus.wait_for_event("ORD-HIST-3", "provisioning.customer_notified")
    await bus.approve("ORD-HIST-4", DEVICE)
    await bus.wait_for_event("ORD-HIST-4", "provisioning.customer_notified")
    page = await call(
        address,
        "ListDeviceConfigurations",
        pb.ListDeviceConfigurationsRequest(device_id=DEVICE, page_size=1),
    )
    assert len(page.configurations) == 1 and page.next_page_token

    for request, fields in (
        (pb.ListDeviceConfigurationsRequest(), {"device_id"}),
        (pb.ListDeviceConfigurationsRequest(device_id="x" * 65), {"device_id"}),
        (pb.ListDeviceConfigurationsRequest(device_id=DEVICE, page_size=501), {"page_size"}),
        (pb.ListDeviceConfigurationsRequest(device_id=DEVICE, page_token="junk"), {"page_token"}),
        # A token is bound to its device.
        (
            pb.ListDeviceConfigurationsRequest(
                device_id="CPE-0302", page_token=page.next_page_token
            ),
            {"page_token"},
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(address, "ListDeviceConfigurations", request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(violations(caught.value)) == fields

    request = pb.ListDeviceConfigurationsRequest(device_id=DEVICE)
    for role in ("engineer", "maintenance", "auditor", "manager", "service"):
        reply = await call(address, "ListDeviceConfigurations", request, role)
        assert len(reply.configurations) == 2, role
    for role in ("clerk", "reviewer"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(address, "ListDeviceConfigurations", request, role)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
