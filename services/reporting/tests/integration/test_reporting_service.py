"""Reporting in-process on real NATS and a real database (SQLite and PostgreSQL), fed with the
events of every stream published as their producers' relays would, and asked over real gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from reporting_harness import (
    MANAGER,
    OE,
    ORDERS,
    PE,
    Producer,
    S,
    auth,
    by_state,
    by_type,
    order_run,
    positions,
    report_after,
)

from orderline.device.v1 import device_pb2
from orderline.events.v1 import (
    archive_events_pb2,
    device_events_pb2,
    envelope_pb2,
)
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.waiting import eventually
from orderline_reporting.bootstrap import build
from orderline_reporting.settings import ReportingSettings
from orderline_runtime.ids import new_id
from orderline_runtime.service import Service

T = TypeVar("T")


@pytest_asyncio.fixture
async def reporting(db_url: str, nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[str]:
    """The running service's gRPC address."""
    port = free_port()
    service: Service = build(
        ReportingSettings(
            service_name="reporting",
            grpc_port=port,
            database_url=db_url,
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            shutdown_grace_seconds=2,
        )
    )
    task = asyncio.create_task(service.run())
    address = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            if task.done():
                task.result()  # surfaces a crash at start
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return int(reply.status)
            except grpc.aio.AioRpcError:
                return -1

        await eventually(status, lambda s: s == health_pb2.HealthCheckResponse.SERVING, 30)
    yield address
    service.stop_event.set()
    await asyncio.wait_for(task, 30)


@pytest_asyncio.fixture
async def stub(reporting: str) -> AsyncIterator[reporting_pb2_grpc.ReportingServiceStub]:
    async with grpc.aio.insecure_channel(reporting) as channel:
        yield reporting_pb2_grpc.ReportingServiceStub(channel)


# --- behaviour ----------------------------------------------------------------------------


async def test_orders_are_counted_by_state_and_business_type(
    stub: reporting_pb2_grpc.ReportingServiceStub, producer: Producer
) -> None:
    for order_id, (business_type, path, _) in ORDERS.items():
        await producer.publish(*order_run(producer, order_id, business_type, path))

    reply = await report_after(stub, producer.published)
    assert reply.events_projected == producer.published
    assert reply.total_orders == len(ORDERS)
    assert by_state(reply) == {"completed": 2, "held": 1, "inProgress": 1, "rejected": 1,
                               "acknowledged": 1}  # fmt: skip
    assert [c.state for c in reply.by_state][:3] == ["acknowledged", "pending", "inProgress"]
    assert by_type(reply) == {"broadband_install": 2, "iptv": 2, "fixed_line": 2}
    assert reply.generated_at.ToDatetime(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=1)


async def test_orders_converge_to_their_final_state_when_events_arrive_out_of_order(
    stub: reporting_pb2_grpc.ReportingServiceStub, producer: Producer
) -> None:
    runs = {
        order_id: order_run(producer, order_id, business_type, path)
        for order_id, (business_type, path, _) in ORDERS.items()
    }
    # Delivered newest first: every state change reaches reporting before its order.created.
    for envs in runs.values():
        await producer.publish(*reversed(envs))

    reply = await report_after(stub, producer.published)
    assert reply.total_orders == len(ORDERS)
    expected: dict[str, int] = {}
    for _, _, state in ORDERS.values():
        expected[state] = expected.get(state, 0) + 1
    assert by_state(reply) == expected
    assert by_type(reply) == {"broadband_install": 2, "iptv": 2, "fixed_line": 2}

    # Late redelivery of an older event (a new message id, as after a replay) changes nothing.
    late = envelope_pb2.Envelope()
    late.CopyFrom(runs["ord-1"][1])  # state_changed acknowledged -> inProgress
    late.id = new_id()
    await producer.publish(late)
    reply = await report_after(stub, producer.published)
    assert by_state(reply) == expected


async def test_events_of_every_stream_are_projected_and_sealed_dossiers_counted(
    stub: reporting_pb2_grpc.ReportingServiceStub, producer: Producer, nats_server: NatsServer
) -> None:
    ids: dict[str, Any] = {"job_id": "job-1", "order_id": "ord-1"}
    provisioning: list[tuple[str, Message]] = [
        ("provisioning.job_started", PE.JobStarted(**ids, device_id="CPE-1")),
        ("provisioning.prechecks_passed", PE.PrechecksPassed(**ids, device_id="CPE-1")),
        ("provisioning.device_configured", PE.DeviceConfigured(**ids, config_version=1)),
        ("provisioning.tests_passed", PE.TestsPassed(**ids, device_id="CPE-1")),
        ("provisioning.service_activated", PE.ServiceActivated(**ids, device_id="CPE-1")),
        ("provisioning.voucher_issued", PE.VoucherIssued(**ids, voucher_id="AV-1")),
        ("provisioning.customer_notified", PE.CustomerNotified(**ids, channel="sms")),
        ("provisioning.job_held", PE.JobHeld(**ids, reason_code="DEVICE_ABNORMAL")),
        ("provisioning.job_failed", PE.JobFailed(**ids, reason_code="TEST_FAILED")),
    ]
    device: list[tuple[str, Message]] = [
        (
            "device.health_changed",
            device_events_pb2.DeviceHealthChanged(
                device_id="CPE-1", state=device_pb2.HEALTH_STATE_ABNORMAL
            ),
        ),
        ("device.alarm_raised", device_events_pb2.AlarmRaised(alarm_id="AL-1", device_id="CPE-1")),
        (
            "device.alarm_cleared",
            device_events_pb2.AlarmCleared(alarm_id="AL-1", device_id="CPE-1"),
        ),
    ]
    sealed = archive_events_pb2.DossierSealed(
        dossier_id="dos-1", order_id="ord-1", sequence=1, content_hash="a" * 64
    )
    envs = [producer.record(t, m, order_id="ord-1") for t, m in provisioning]
    envs += [producer.record(t, m, device_id="CPE-1") for t, m in device]
    envs.append(producer.record("archive.dossier_sealed", sealed, order_id="ord-1"))
    await producer.publish(*envs)

    reply = await report_after(stub, len(envs))
    assert reply.events_projected == len(envs) == 13
    assert reply.dossiers_sealed == 1
    assert reply.total_orders == 0  # provisioning events alone make no order

    # An event against the contract is dead-lettered, not counted.
    bad = producer.record(
        "order.state_changed",
        OE.OrderStateChanged(order_id="ord-9", to_state=S.ORDER_STATE_UNSPECIFIED),
        order_id="ord-9",
    )
    await producer.publish(bad)

    async def dead_letters() -> int:
        return int((await producer.js.stream_info("DEADLETTER")).state.messages)

    await eventually(dead_letters, lambda n: n == 1)
    reply = await report_after(stub, len(envs))
    assert reply.events_projected == len(envs)
    assert reply.total_orders == 0


async def test_managers_auditors_and_services_may_read_the_order_report(
    stub: reporting_pb2_grpc.ReportingServiceStub,
) -> None:
    for role in ("manager", "auditor", "service"):
        reply = await stub.GetOrderReport(
            reporting_pb2.GetOrderReportRequest(), metadata=auth(role)
        )
        assert reply.total_orders == 0
        assert len(reply.by_state) == 10


async def test_clerk_and_anonymous_callers_are_refused_the_order_report(
    stub: reporting_pb2_grpc.ReportingServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as clerk:
        await stub.GetOrderReport(reporting_pb2.GetOrderReportRequest(), metadata=auth("clerk"))
    assert clerk.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetOrderReport(reporting_pb2.GetOrderReportRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await stub.GetOrderReport(
            reporting_pb2.GetOrderReportRequest(), metadata=(("authorization", "Bearer nope"),)
        )
    assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest_asyncio.fixture
async def flaky_once(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Event types whose first delivery fails in the projector (a transient fault): the
    message is nak'ed and redelivered later, after events behind it in its stream."""
    from orderline_reporting.app.projector import Projector

    failing: set[str] = set()
    failed: set[str] = set()
    original = Projector.on_counted

    async def on_counted(self: Projector, uow: Any, event: Any, payload: Any) -> None:
        if event.event_type in failing and event.id not in failed:
            failed.add(event.id)
            raise ConnectionError("reporting: simulated transient fault")
        await original(self, uow, event, payload)

    monkeypatch.setattr(Projector, "on_counted", on_counted)
    return failing


async def test_a_rebuild_reaches_the_live_digest_after_redeliveries_and_duplicates(
    flaky_once: set[str],
    stub: reporting_pb2_grpc.ReportingServiceStub,
    producer: Producer,
) -> None:
    flaky_once.add("provisioning.job_started")
    envs = []
    for n in range(4):
        envs += order_run(
            producer,
            f"ord-{n}",
            "iptv",
            [S.ORDER_STATE_IN_PROGRESS, S.ORDER_STATE_HELD, S.ORDER_STATE_IN_PROGRESS]
            + ([S.ORDER_STATE_COMPLETED] if n % 2 else []),
        )
        ids: dict[str, Any] = {"job_id": f"job-{n}", "order_id": f"ord-{n}"}
        envs.append(
            producer.record(
                "provisioning.job_started",
                PE.JobStarted(**ids, device_id="CPE-1"),
                order_id=ids["order_id"],
            )
        )
        envs.append(
            producer.record(
                "provisioning.tests_passed",
                PE.TestsPassed(**ids, device_id="CPE-1"),
                order_id=ids["order_id"],
            )
        )
    envs.append(
        producer.record(
            "archive.dossier_sealed",
            archive_events_pb2.DossierSealed(
                dossier_id="dos-1", order_id="ord-1", sequence=1, content_hash="a" * 64
            ),
            order_id="ord-1",
        )
    )
    # Out of order within the order stream, as several intake replicas' relays would publish.
    await producer.publish(*reversed(envs[:6]))
    await producer.publish(*envs[6:])
    # A republished event past JetStream's duplicate window: a new stream sequence, the same
    # event id; the inbox makes it a no-op, live and in the replay alike.
    await producer.js.publish(
        f"orderline.{envs[0].type}",
        envs[0].SerializeToString(),
        headers={"Nats-Msg-Id": "republished-" + envs[0].id},
    )

    async def digest() -> reporting_pb2.GetProjectionDigestResponse:
        reply: reporting_pb2.GetProjectionDigestResponse = await stub.GetProjectionDigest(
            reporting_pb2.GetProjectionDigestRequest(recompute=True), metadata=MANAGER
        )
        return reply

    live = await eventually(digest, lambda r: r.events_applied == len(envs), 30)
    # The incrementally kept digest is the one a full scan of the rows gives.
    assert live.recomputed_digest == live.digest
    assert len(live.digest) == 64
    assert live.checkpoint >= 2

    rebuilt = await stub.RebuildProjections(
        reporting_pb2.RebuildProjectionsRequest(), metadata=auth("auditor"), timeout=60
    )
    assert rebuilt.consistent, rebuilt.mismatches
    assert not rebuilt.mismatches
    assert rebuilt.digest == live.digest
    assert positions(rebuilt) == positions(live)
    assert rebuilt.live_digest == live.digest
    assert rebuilt.events_replayed == len(envs)
    assert rebuilt.events_skipped == 1  # the republished duplicate
    assert rebuilt.checkpoints_compared == live.checkpoint
    assert rebuilt.checkpoints_matched >= 1
    # The redelivered job_started events were applied after events behind them: the live
    # checkpoints recorded meanwhile had gaps and no replay position equals theirs.
    assert rebuilt.checkpoints_not_comparable >= 1
    assert (
        rebuilt.checkpoints_matched + rebuilt.checkpoints_not_comparable
        == rebuilt.checkpoints_compared
    )


async def test_only_managers_and_auditors_may_rebuild_and_clerks_may_not_read_the_digest(
    stub: reporting_pb2_grpc.ReportingServiceStub,
) -> None:
    for role in ("service", "clerk"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RebuildProjections(
                reporting_pb2.RebuildProjectionsRequest(), metadata=auth(role)
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as clerk:
        await stub.GetProjectionDigest(
            reporting_pb2.GetProjectionDigestRequest(), metadata=auth("clerk")
        )
    assert clerk.value.code() == grpc.StatusCode.PERMISSION_DENIED
    empty = await stub.GetProjectionDigest(
        reporting_pb2.GetProjectionDigestRequest(recompute=True), metadata=auth("service")
    )
    assert empty.digest == empty.recomputed_digest
    assert empty.events_applied == 0
