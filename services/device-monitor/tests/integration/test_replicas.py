"""Device-monitor processes on one database, as a Deployment with several replicas runs them:
the fleet's partitions are split between the live replicas, each evaluates only its own devices,
a caller may talk to any of them, a third replica joining takes a share, and a replica killed
with SIGKILL has its partitions, with their open alarms, taken over by the others.

The processes and one NATS server are shared by the tests of this file, in order (each test
starts from where the previous one left the fleet); leases are short (LEASE_SECONDS).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from device_monitor_harness import DeviceMonitor, ago, field_violations, sample
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from orderline.device.v1 import device_pb2
from orderline_device_monitor.adapters.tables import alarms
from orderline_devtools.local import NatsServer, PostgresServer, free_port
from orderline_devtools.testing import new_postgres_database
from orderline_devtools.waiting import eventually

LEASE_SECONDS = 2.0
PARTITIONS = 8
SERVING = health_pb2.HealthCheckResponse.SERVING
# Long enough for a lease to expire and the survivors' next rounds, never timed itself.
TAKE_OVER_WAIT = 4 * LEASE_SECONDS + 10
# Where device-monitor keeps its leases (NATS permissions allow it this bucket).
BUCKET = "orderline_device_monitor_leader"


def partition_of(key: str) -> int:
    """The documented partition function: CRC-32 of the key, modulo the partitions."""
    return zlib.crc32(key.encode()) % PARTITIONS


class Replica:
    def __init__(self, name: str, database_url: str, nats_url: str, logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
        env.update(
            ORDERLINE_GRPC_PORT=str(self.port),
            ORDERLINE_DATABASE_URL=database_url,
            ORDERLINE_NATS_URL=nats_url,
            ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="true",
            ORDERLINE_TRACE_DIR=str(logs / "traces"),
            ORDERLINE_REPLICA_ID=name,
            ORDERLINE_LEADER_LEASE_SECONDS=str(LEASE_SECONDS),
            ORDERLINE_DEVICE_PARTITIONS=str(PARTITIONS),
        )
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orderline_device_monitor"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = DeviceMonitor(None, self.address, nats_url)  # type: ignore[arg-type]

    async def health(self) -> int | None:
        """SERVING / NOT_SERVING as a kubelet's gRPC probe sees it; None while not listening."""
        assert self.process.poll() is None, self.log.read_text()
        async with grpc.aio.insecure_channel(self.address) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return None
        return int(reply.status)

    def logged(self, event: str, device_id: str) -> bool:
        """Whether this process logged `event` about the device."""
        return any(
            event in line and f'"{device_id}"' in line
            for line in self.log.read_text(errors="replace").splitlines()
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Fleet:
    database_url: str
    nats_url: str
    logs: Path
    replicas: dict[str, Replica] = field(default_factory=dict)

    def start(self, name: str) -> Replica:
        replica = self.replicas[name] = Replica(name, self.database_url, self.nats_url, self.logs)
        return replica


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | None
) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("replicas")
    server = NatsServer(work / "nats").start()
    running = Fleet(new_postgres_database(postgres_server), server.url, work)
    try:
        yield running
    finally:
        for replica in running.replicas.values():
            replica.stop()
        server.stop()


def devices_per_partition() -> dict[int, str]:
    """One device for each partition (keyed by its id: the samples name no access node)."""
    found: dict[int, str] = {}
    index = 800
    while len(found) < PARTITIONS:
        index += 1
        found.setdefault(partition_of(f"CPE-{index:04d}"), f"CPE-{index:04d}")
    return found


DEVICES = devices_per_partition()


async def slot_holders(fleet: Fleet) -> dict[int, str]:
    """Which replica holds each partition's lease, read from NATS as an operator would."""
    prefix = "db-" + hashlib.sha256(fleet.database_url.encode()).hexdigest()[:24]
    nc = await nats.connect(fleet.nats_url)
    try:
        try:
            kv = await nc.jetstream().key_value(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            return {}
        holders: dict[int, str] = {}
        for slot in range(PARTITIONS):
            try:
                entry = await kv.get(f"{prefix}.slot.{slot}")
            except nats.js.errors.KeyNotFoundError:
                continue
            holders[slot] = (entry.value or b"").decode().partition("\n")[0]
        return holders
    finally:
        await nc.close()


async def open_alarm_rows(database_url: str, device_id: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(alarms)
                .where(alarms.c.device_id == device_id, alarms.c.cleared_at.is_(None))
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def all_alarm_rows(database_url: str, device_id: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(alarms).where(alarms.c.device_id == device_id)
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def send(replica: Replica, *batches: list[device_pb2.TelemetrySample]) -> None:
    """Streams the batches, resending while a partition moves (UNAVAILABLE), as the fleet
    does."""

    async def attempt() -> bool:
        try:
            await replica.client.stream(*batches)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return False
        return True

    await eventually(attempt, bool, TAKE_OVER_WAIT, f"batches accepted by {replica.name}")


async def health_via(replica: Replica, device_id: str) -> Any:
    async def attempt() -> Any:
        try:
            return await replica.client.health(device_id)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return None

    return await eventually(attempt, lambda h: h is not None, TAKE_OVER_WAIT, "an answer")


@pytest.fixture
async def clients(fleet: Fleet) -> AsyncIterator[None]:
    yield
    for replica in fleet.replicas.values():
        await replica.client.close()
        replica.client = DeviceMonitor(None, replica.address, fleet.nats_url)  # type: ignore[arg-type]


async def test_two_replicas_split_the_partitions_and_each_evaluates_only_its_own(
    fleet: Fleet, clients: None
) -> None:
    a = fleet.start("replica-a")
    await eventually(a.health, lambda s: s == SERVING, 60, "replica-a SERVING")
    b = fleet.start("replica-b")
    await eventually(b.health, lambda s: s == SERVING, 60, "replica-b SERVING")
    holders = await eventually(
        lambda: slot_holders(fleet),
        lambda h: len(h) == PARTITIONS and Counter(h.values()) == {a.name: 4, b.name: 4},
        TAKE_OVER_WAIT,
        "the partitions split 4/4",
    )

    # Every sample goes to replica-a; each device is evaluated by its partition's owner.
    await send(a, *faulty_all())
    owners = {name: fleet.replicas[name] for name in (a.name, b.name)}
    for partition, device in DEVICES.items():
        assert await open_alarm_rows(fleet.database_url, device) == 1
        owner = owners[holders[partition]]
        other = b if owner is a else a
        assert owner.logged("alarm raised", device), (device, owner.name)
        assert not other.logged("alarm raised", device), (device, other.name)

    # Any replica answers about any device: its owner's answer.
    for device in DEVICES.values():
        via_a, via_b = await health_via(a, device), await health_via(b, device)
        assert via_a.state == device_pb2.HEALTH_STATE_ABNORMAL
        assert via_b.open_alarm_id == via_a.open_alarm_id
    # Errors come back as the owner gave them, field violations included.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await b.client.health("not a device id!")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["device_id"]


def faulty_all() -> list[list[device_pb2.TelemetrySample]]:
    """Two batches: every device overheating 3 s ago, then now (longer than the pending period,
    by the samples' own times)."""
    first = [sample(d, ago(3), temperature_c=90.0) for d in DEVICES.values()]
    second = [sample(d, temperature_c=90.0) for d in DEVICES.values()]
    return [first, second]


async def test_a_third_replica_takes_its_share_and_no_device_is_evaluated_twice(
    fleet: Fleet, clients: None
) -> None:
    a, b = fleet.replicas["replica-a"], fleet.replicas["replica-b"]
    c = fleet.start("replica-c")

    # The fault goes on while replica-c joins and the partitions move: whoever evaluates a
    # device knows its open alarm (restored with the partition), so none is raised again.
    async def fault_goes_on() -> dict[int, str]:
        await send(a, [sample(d, temperature_c=91.0) for d in DEVICES.values()])
        return await slot_holders(fleet)

    holders = await eventually(
        fault_goes_on,
        lambda h: len(h) == PARTITIONS and sorted(Counter(h.values()).values()) == [2, 3, 3],
        60,
        "three replicas share the partitions",
    )
    await eventually(c.health, lambda s: s == SERVING, 30, "replica-c SERVING")
    await send(b, [sample(d, temperature_c=91.0) for d in DEVICES.values()])
    for device in DEVICES.values():
        assert await all_alarm_rows(fleet.database_url, device) == 1, device
    for replica in (a, b, c):
        assert "open alarms changed under us" not in replica.log.read_text(errors="replace")

    # replica-c's devices: it answers with the alarm it restored and clears it on recovery.
    mine = [d for p, d in DEVICES.items() if holders[p] == c.name]
    assert mine
    for device in mine:
        assert (await health_via(c, device)).state == device_pb2.HEALTH_STATE_ABNORMAL
    await send(b, [sample(d) for d in mine])
    for device in mine:
        assert await open_alarm_rows(fleet.database_url, device) == 0
        assert c.logged("alarm cleared", device)
        assert not a.logged("alarm cleared", device) and not b.logged("alarm cleared", device)


async def test_a_killed_replicas_partitions_and_open_alarms_are_taken_over(
    fleet: Fleet, clients: None
) -> None:
    a, b, c = (fleet.replicas[n] for n in ("replica-a", "replica-b", "replica-c"))
    before = await slot_holders(fleet)
    orphans = {p: d for p, d in DEVICES.items() if before[p] == b.name}
    assert orphans
    alarm_ids = {d: (await health_via(a, d)).open_alarm_id for d in orphans.values()}
    assert all(alarm_ids.values())

    b.kill()
    after = await eventually(
        lambda: slot_holders(fleet),
        lambda h: len(h) == PARTITIONS and set(h.values()) == {a.name, c.name},
        TAKE_OVER_WAIT,
        "replica-b's partitions taken over",
    )
    survivors = {a.name: a, c.name: c}
    for partition, device in orphans.items():
        # The new owner restored the dead one's open alarm, and keeps evaluating the device:
        # the same fault raises nothing new, the recovery clears it.
        health = await health_via(a, device)
        assert health.state == device_pb2.HEALTH_STATE_ABNORMAL
        assert health.open_alarm_id == alarm_ids[device]
        await send(c, [sample(device, temperature_c=90.0)])
        assert await all_alarm_rows(fleet.database_url, device) == 1
        await send(c, [sample(device)])
        assert await open_alarm_rows(fleet.database_url, device) == 0
        assert survivors[after[partition]].logged("alarm cleared", device)
        assert (await health_via(c, device)).state == device_pb2.HEALTH_STATE_GOOD
    # Both survivors serve again once each has restored what it took over (a replica reports
    # NOT_SERVING while a partition it holds is still being restored, which can trail the
    # bucket's holders read above).
    for survivor in (a, c):
        await eventually(survivor.health, lambda s: s == SERVING, TAKE_OVER_WAIT, "SERVING")


def test_the_partition_function_is_the_documented_one() -> None:
    from orderline_device_monitor.app.partitions import Partitions

    partitions = Partitions(PARTITIONS)
    assert all(partitions.of_key(k) == partition_of(k) for k in ("AN-01", "CPE-0801", "x"))
