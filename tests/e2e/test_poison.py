"""Poison and duplicates against the running stack, published with a raw JetStream client.

- Poison on every stream (garbage bytes, an empty message, a truncated envelope, an envelope
  whose type is not its subject's, a known type carrying another payload) lands in the
  DEADLETTER stream once per consuming service, with its reason, a log line and a metric; orders
  submitted meanwhile complete.
- An event type nobody consumes is stored and never delivered: it changes nothing.
- Replays (an order's every event re-published under a new Nats-Msg-Id), a duplicate inside
  JetStream's window (same Nats-Msg-Id) and re-issued events (same order, new event id) change
  nothing twice: one job, one configuration, one SMS, one dossier, reporting unchanged.
- An event for an order intake does not know is dead-lettered by intake.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import DecodeError, Message

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.events.v1 import envelope_pb2, order_events_pb2, provisioning_events_pb2
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import SERVICES, LocalStack
from orderline_devtools.local import free_port
from orderline_runtime.ids import new_id
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.telemetry_names import (
    EVENTS_DEAD_LETTERED,
    EVENTS_HANDLED,
    prometheus_counter,
)
from tests.e2e.faults import (
    AUDITOR,
    CLERK,
    MANAGER,
    STREAMS,
    Stored,
    read_streams,
    wait_until,
)

pytestmark = pytest.mark.e2e


# Who consumes what (each service's bootstrap): the services that must dead-letter a poison
# message on that subject, or see a replay of it as a duplicate.
MILESTONES = (
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
    "job_held",
    "job_failed",
)
# Who consumes each event, from the one event catalogue (a new consumer is poisoned too).
CONSUMERS: dict[str, set[str]] = {e.event_type: set(e.consumers) for e in catalogue().events}
# One subject per consumer and stream, so every durable of every stream gets the poison.
POISONED_TYPES = (
    "order.approved",
    "order.completed",
    "provisioning.job_started",
    "provisioning.prechecks_passed",
    "device.health_changed",
    "archive.dossier_sealed",
)


# --- the stack, with a metrics endpoint per service ------------------------------------------


@dataclass
class Running:
    stack: LocalStack
    metrics_ports: dict[str, int]

    @property
    def nats_url(self) -> str:
        assert self.stack.nats is not None
        return self.stack.nats.url


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    stack = LocalStack(Path(tmp_path_factory.mktemp("poison")), devices=40, preferred_ports=False)
    stack.plan()
    ports = {svc: free_port() for svc in SERVICES}
    for svc, port in ports.items():
        stack.procs[svc].env["ORDERLINE_METRICS_PORT"] = str(port)
    try:
        stack.start(timeout=90)
        yield Running(stack, ports)
    finally:
        stack.stop()


def create_orders(stack: LocalStack, devices: range) -> list[str]:
    with grpc.insecure_channel(stack.address("intake")) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        return [
            stub.CreateOrder(demo_request(i, f"CPE-{i:04d}"), metadata=CLERK, timeout=10).order.id
            for i in devices
        ]


def get_orders(stack: LocalStack, ids: list[str]) -> list[order_pb2.Order]:
    with grpc.insecure_channel(stack.address("intake")) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        return [
            stub.GetOrder(order_pb2.GetOrderRequest(order_id=i), metadata=CLERK, timeout=5).order
            for i in ids
        ]


def wait_completed(stack: LocalStack, ids: list[str]) -> list[order_pb2.Order]:
    def done() -> list[order_pb2.Order] | None:
        orders = get_orders(stack, ids)
        finished = all(o.state == order_pb2.ORDER_STATE_COMPLETED and o.dossier_id for o in orders)
        return orders if finished else None

    return wait_until(f"{len(ids)} orders completed and archived", done, within=90)


# --- NATS ------------------------------------------------------------------------------------


async def _publish(url: str, messages: list[tuple[str, bytes, str]]) -> list[bool]:
    """Publishes (subject, data, Nats-Msg-Id); returns JetStream's duplicate flags."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        acks = [await js.publish(s, d, headers={"Nats-Msg-Id": i}) for s, d, i in messages]
        return [bool(a.duplicate) for a in acks]
    finally:
        await nc.close()


def publish(url: str, messages: list[tuple[str, bytes, str]]) -> list[bool]:
    return asyncio.run(_publish(url, messages))


async def _backlog(url: str) -> dict[str, int]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        left = {}
        for stream in STREAMS:
            for info in await js.consumers_info(stream):
                left[f"{stream}/{info.name}"] = info.num_pending + info.num_ack_pending
        return left
    finally:
        await nc.close()


def wait_settled(url: str) -> None:
    """Until every durable of every stream has taken and acked (or terminated) everything."""

    def settled() -> dict[str, int] | None:
        left = asyncio.run(_backlog(url))
        return left if not any(left.values()) else None

    wait_until("every consumer to have settled its stream", settled, within=60)


def dead_letters(url: str) -> list[envelope_pb2.DeadLetter]:
    letters = []
    for stored in read_streams(url, ("DEADLETTER",)):
        letter = envelope_pb2.DeadLetter()
        letter.ParseFromString(stored.data)
        assert stored.subject == f"orderline.deadletter.{letter.consumer}"
        letters.append(letter)
    return letters


# --- what a user checks ----------------------------------------------------------------------


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eEinfNa]+)$")


def metric(running: Running, service: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on the service's /metrics whose labels include `labels`."""
    url = f"http://127.0.0.1:{running.metrics_ports[service]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def log_lines(stack: LocalStack, service: str, event: str) -> list[dict[str, Any]]:
    lines = []
    for line in stack.procs[service].log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the "listening" line
        if isinstance(record, dict) and record.get("event") == event:
            lines.append(record)
    return lines


@dataclass
class Snapshot:
    jobs: list[tuple[str, int, int]]
    counters: agent_pb2.GetCountersResponse
    deliveries: list[tuple[str, int]]
    dossiers: list[tuple[str, str, int]]
    chain_records: int
    report: tuple[int, list[tuple[str, int]], int, int]
    orders: list[tuple[str, int, int, int, str]]


def snapshot(stack: LocalStack, order_ids: list[str]) -> Snapshot:
    with grpc.insecure_channel(stack.address("provisioning")) as channel:
        jobs = (
            provisioning_pb2_grpc.ProvisioningServiceStub(channel)
            .ListJobs(provisioning_pb2.ListJobsRequest(page_size=500), metadata=CLERK, timeout=5)
            .jobs
        )
    with grpc.insecure_channel(stack.address("fleet")) as channel:
        counters = agent_pb2_grpc.DeviceAgentServiceStub(channel).GetCounters(
            agent_pb2.GetCountersRequest(), timeout=5
        )
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        deliveries = (
            gateway_pb2_grpc.NotificationGatewayServiceStub(channel)
            .ListDeliveries(gateway_pb2.ListDeliveriesRequest(), timeout=5)
            .deliveries
        )
    with grpc.insecure_channel(stack.address("archive")) as channel:
        archive = archive_pb2_grpc.ArchiveServiceStub(channel)
        dossiers = archive.ListDossiers(
            archive_pb2.ListDossiersRequest(page_size=500), metadata=AUDITOR, timeout=5
        ).dossiers
        chain = archive.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR, timeout=5)
    assert chain.valid, chain
    with grpc.insecure_channel(stack.address("reporting")) as channel:
        report = reporting_pb2_grpc.ReportingServiceStub(channel).GetOrderReport(
            reporting_pb2.GetOrderReportRequest(), metadata=MANAGER, timeout=5
        )
    return Snapshot(
        jobs=sorted((j.order_id, j.state, j.attempts) for j in jobs),
        counters=counters,
        deliveries=sorted((d.idempotency_key, d.attempts) for d in deliveries),
        dossiers=sorted((d.order_id, d.id, d.sequence) for d in dossiers),
        chain_records=chain.records_checked,
        report=(
            report.total_orders,
            sorted((s.state, s.count) for s in report.by_state),
            report.dossiers_sealed,
            report.events_projected,
        ),
        orders=[
            (o.id, o.state, len(o.milestones), len(o.history), o.dossier_id)
            for o in get_orders(stack, order_ids)
        ],
    )


@pytest.fixture(scope="module")
def baseline(running: Running) -> list[order_pb2.Order]:
    return wait_completed(running.stack, create_orders(running.stack, range(1, 6)))


# --- poison ----------------------------------------------------------------------------------


def _poison(event_type: str) -> list[tuple[str, bytes]]:
    """(kind, bytes) of every kind of poison for the subject of `event_type`."""
    unknown_order = new_id()
    good = build_envelope(
        event_type,
        order_events_pb2.OrderCreated(order_id=unknown_order),
        producer="chaos",
        order_id=unknown_order,
    ).SerializeToString()
    mismatched = build_envelope(
        "order.created",
        order_events_pb2.OrderCreated(order_id=unknown_order),
        producer="chaos",
        order_id=unknown_order,
    )
    return [
        ("garbage", random.Random(event_type).randbytes(64)),
        ("empty", b""),
        ("truncated", good[: len(good) // 2]),
        ("type-not-subject", mismatched.SerializeToString()),
        # Right type for the subject, wrong payload (an OrderCreated inside).
        ("wrong-payload", good),
    ]


EXPECTED_REASON = {
    "garbage": ("not an Envelope", "envelope lacks"),
    "empty": ("envelope lacks",),
    "truncated": ("not an Envelope", "envelope lacks", "no payload"),
    "type-not-subject": ("does not match subject",),
    "wrong-payload": ("expected",),
}


def test_poison_is_dead_lettered_with_reason_log_and_metric_and_orders_keep_completing(
    running: Running, baseline: list[order_pb2.Order]
) -> None:
    stack, url = running.stack, running.nats_url
    before = {s: metric(running, s, prometheus_counter(EVENTS_DEAD_LETTERED)) for s in SERVICES}
    poisons = [
        (event_type, kind, data)
        for event_type in POISONED_TYPES
        for kind, data in _poison(event_type)
    ]
    # An event type nobody consumes: stored, never delivered (every durable filters subjects).
    unknown_type = build_envelope(
        "order.teleported", order_events_pb2.OrderCreated(), producer="chaos"
    ).SerializeToString()
    publish(
        url,
        [(f"orderline.{t}", data, f"poison-{new_id()}") for t, _, data in poisons]
        + [("orderline.order.teleported", unknown_type, f"poison-{new_id()}")],
    )
    # Work goes on while the poison is handled.
    ids = create_orders(stack, range(6, 11))
    wait_completed(stack, ids)

    expected = Counter(
        (consumer, f"orderline.{t}", data) for t, _, data in poisons for consumer in CONSUMERS[t]
    )

    def all_dead_lettered() -> list[envelope_pb2.DeadLetter] | None:
        letters = dead_letters(url)
        seen = Counter((d.consumer, d.subject, d.original) for d in letters)
        return letters if all(seen[k] >= n for k, n in expected.items()) else None

    letters = wait_until("every poison dead-lettered by each consumer", all_dead_lettered)
    by_key = {(d.consumer, d.subject, d.original): d for d in letters}
    for event_type, kind, data in poisons:
        for consumer in CONSUMERS[event_type]:
            letter = by_key[(consumer, f"orderline.{event_type}", data)]
            assert letter.stream == event_type.split(".")[0].upper()
            assert letter.time.seconds > 0 and letter.deliveries >= 1
            assert any(r in letter.reason for r in EXPECTED_REASON[kind]), (kind, letter.reason)
    # Nothing else was dead-lettered: the real orders' events were all handled.
    assert len(letters) == sum(expected.values()), Counter(d.reason for d in letters)
    assert not any("teleported" in d.subject for d in letters)

    wait_settled(url)
    for svc in SERVICES:
        want = sum(n for (consumer, _, _), n in expected.items() if consumer == svc)
        logged = [
            r
            for r in log_lines(stack, svc, "event dead-lettered")
            if r.get("subject", "").removeprefix("orderline.") in POISONED_TYPES and r["reason"]
        ]
        assert len(logged) == want, (svc, len(logged), want)
        counted = metric(running, svc, prometheus_counter(EVENTS_DEAD_LETTERED)) - before[svc]
        assert counted == want, (svc, counted, want)
    print(
        f"RELIABILITY: poison: {len(poisons)} poison messages ({len(POISONED_TYPES)} subjects on "
        f"4 streams x {len(EXPECTED_REASON)} kinds) + 1 unknown type; "
        f"{len(letters)} dead letters with reason, log line and metric; "
        f"orders completed meanwhile={len(ids)}"
    )


# --- replays and duplicates ------------------------------------------------------------------


def _envelope(data: bytes) -> envelope_pb2.Envelope:
    """The stored envelope; an empty one for the poison earlier tests left in the streams."""
    env = envelope_pb2.Envelope()
    try:
        env.ParseFromString(data)
    except DecodeError:
        return envelope_pb2.Envelope()
    return env


def _reissued(stored: Stored) -> bytes:
    """The same event under a new event id: what a producer re-sending it would publish."""
    env = _envelope(stored.data)
    env.id = new_id()
    return env.SerializeToString()


def test_replays_and_duplicates_change_nothing_twice(
    running: Running, baseline: list[order_pb2.Order]
) -> None:
    stack, url = running.stack, running.nats_url
    # A fresh order, so its events are inside JetStream's 120 s duplicate window.
    order_id = create_orders(stack, range(11, 12))[0]
    wait_completed(stack, [order_id])
    order_ids = [o.id for o in baseline] + [order_id]
    wait_settled(url)
    before = snapshot(stack, order_ids)
    duplicates_before = {
        s: metric(running, s, prometheus_counter(EVENTS_HANDLED), outcome="duplicate")
        for s in SERVICES
    }

    own = [s for s in read_streams(url) if _envelope(s.data).order_id == order_id]
    types = Counter(_envelope(s.data).type for s in own)
    assert {"order.approved", "order.completed", "archive.dossier_sealed"} <= set(types)
    approved = next(s for s in own if _envelope(s.data).type == "order.approved")
    completed = next(s for s in own if _envelope(s.data).type == "order.completed")

    # 1. Inside the window, the same Nats-Msg-Id: JetStream itself drops it.
    in_window = publish(url, [(approved.subject, approved.data, approved.headers["Nats-Msg-Id"])])
    assert in_window == [True]
    # 2. Replay: every event of the order again, stored under new message ids (as after the
    # window, or a re-drive from a backup); each consumer's inbox knows the event id.
    replayed = publish(url, [(s.subject, s.data, f"replay-{new_id()}") for s in own])
    assert not any(replayed)
    # 3. Re-issued: a second approval and a second completion of the same order, new event ids.
    reissued = publish(
        url,
        [(s.subject, _reissued(s), f"reissue-{new_id()}") for s in (approved, completed)],
    )
    assert not any(reissued)

    expected_duplicates = Counter(
        consumer for s in own for consumer in CONSUMERS[_envelope(s.data).type]
    )

    def inbox_caught_all() -> dict[str, float] | None:
        seen = {
            s: metric(running, s, prometheus_counter(EVENTS_HANDLED), outcome="duplicate")
            - duplicates_before[s]
            for s in SERVICES
        }
        return seen if all(seen[s] >= expected_duplicates[s] for s in SERVICES) else None

    seen = wait_until("each consumer to see the replays as duplicates", inbox_caught_all)
    wait_settled(url)
    after = snapshot(stack, order_ids)

    assert after.jobs == before.jobs
    assert after.counters == before.counters
    assert after.deliveries == before.deliveries
    assert after.dossiers == before.dossiers and after.chain_records == before.chain_records
    assert after.orders == before.orders
    # Reporting: the replays counted nothing; the two re-issued events are new events (counted
    # as such) and move no order and no total.
    total, by_state, sealed, projected = before.report
    assert after.report == (total, by_state, sealed, projected + 2)
    assert seen == {s: float(expected_duplicates[s]) for s in SERVICES}
    assert not dead_letters_about(url, order_id)
    print(
        f"RELIABILITY: duplicates: 1 in-window duplicate dropped by JetStream; {len(own)} events "
        f"replayed, {sum(expected_duplicates.values())} deliveries recognised as duplicates by "
        f"the inboxes; 2 re-issued events (new ids) changed nothing; duplicated effects=0"
    )


def dead_letters_about(url: str, order_id: str) -> list[envelope_pb2.DeadLetter]:
    return [d for d in dead_letters(url) if order_id.encode() in d.original]


# --- an order nobody knows -------------------------------------------------------------------


def test_an_event_for_an_unknown_order_is_dead_lettered_by_intake(
    running: Running, baseline: list[order_pb2.Order]
) -> None:
    stack, url = running.stack, running.nats_url
    unknown = new_id()
    events: list[tuple[str, Message]] = [
        (
            "provisioning.prechecks_passed",
            provisioning_events_pb2.PrechecksPassed(job_id=new_id(), order_id=unknown),
        ),
        (
            "provisioning.job_held",
            provisioning_events_pb2.JobHeld(
                job_id=new_id(), order_id=unknown, reason_code="DEVICE_ABNORMAL"
            ),
        ),
    ]
    envelopes = {
        t: build_envelope(t, p, producer="provisioning", order_id=unknown).SerializeToString()
        for t, p in events
    }
    publish(url, [(f"orderline.{t}", data, f"unknown-{new_id()}") for t, data in envelopes.items()])

    def intake_dead_lettered() -> list[envelope_pb2.DeadLetter] | None:
        letters = [d for d in dead_letters_about(url, unknown) if d.consumer == "intake"]
        return letters if len(letters) == len(envelopes) else None

    letters = wait_until("intake to dead-letter both events", intake_dead_lettered)
    for letter in letters:
        assert "not found" in letter.reason and unknown in letter.reason, letter.reason
    wait_settled(url)
    logged = [
        r
        for r in log_lines(stack, "intake", "event dead-lettered")
        if unknown in r.get("reason", "")
    ]
    assert len(logged) == len(envelopes)
    # Nobody else dead-letters them, and intake has no such order afterwards.
    assert {d.consumer for d in dead_letters_about(url, unknown)} == {"intake"}
    with (
        grpc.insecure_channel(stack.address("intake")) as channel,
        pytest.raises(grpc.RpcError) as e,
    ):
        order_pb2_grpc.OrderServiceStub(channel).GetOrder(
            order_pb2.GetOrderRequest(order_id=unknown), metadata=CLERK, timeout=5
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    print(
        f"RELIABILITY: unknown order: {len(envelopes)} events for an unknown order "
        f"dead-lettered by intake with reason and log line"
    )
