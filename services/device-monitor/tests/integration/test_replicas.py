"""Two device-monitor processes on one database, as a Deployment with two replicas runs them:
one evaluates the fleet, the other stands by and forwards every call to it (a caller may talk
to either), and takes over, with the open alarms, when the first is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
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

LEASE_SECONDS = 3
SERVING = health_pb2.HealthCheckResponse.SERVING


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
        )
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orderline_device_monitor"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

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


@pytest.fixture
def replicas(
    nats_server: NatsServer, postgres_server: PostgresServer | None, tmp_path: Path
) -> Iterator[tuple[str, list[Replica]]]:
    database_url = new_postgres_database(postgres_server)
    started: list[Replica] = []
    yield database_url, started
    for replica in started:
        replica.stop()


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


async def test_the_standby_takes_over_the_fleet_and_its_open_alarms_when_the_leader_is_killed(
    replicas: tuple[str, list[Replica]], nats_server: NatsServer, tmp_path: Path
) -> None:
    database_url, started = replicas
    first = Replica("replica-a", database_url, nats_server.url, tmp_path)
    started.append(first)
    await eventually(first.health, lambda s: s == SERVING, 60, "replica-a SERVING")
    second = Replica("replica-b", database_url, nats_server.url, tmp_path)
    started.append(second)
    await eventually(second.health, lambda s: s is not None, 60, "replica-b listening")

    leader = DeviceMonitor(None, first.address, nats_server.url)  # type: ignore[arg-type]
    standby = DeviceMonitor(None, second.address, nats_server.url)  # type: ignore[arg-type]
    try:
        device = "CPE-0701"
        await leader.stream(
            [sample(device, ago(3), temperature_c=90.0)], [sample(device, temperature_c=90.0)]
        )
        before = await leader.health(device)
        assert before.state == device_pb2.HEALTH_STATE_ABNORMAL

        # Both are ready; the standby evaluates nothing itself: what a caller sends it goes to
        # the leader, and what it answers is the leader's.
        await eventually(second.health, lambda s: s == SERVING, 30, "replica-b ready")
        other = "CPE-0702"
        await standby.stream(
            [sample(other, ago(3), temperature_c=91.0)], [sample(other, temperature_c=91.0)]
        )
        assert (await leader.health(other)).state == device_pb2.HEALTH_STATE_ABNORMAL
        assert (await standby.health(device)).open_alarm_id == before.open_alarm_id
        # Errors come back as the leader gave them, field violations included.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await standby.health("not a device id!")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["device_id"]

        first.kill()

        async def answered() -> object | None:
            # Until the lease expires the standby still forwards to the dead leader: UNAVAILABLE,
            # which a caller retries.
            try:
                return await standby.health(device)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                return None

        after: Any = await eventually(answered, lambda h: h is not None, 30, "replica-b leads")
        assert await second.health() == SERVING
        assert after.state == device_pb2.HEALTH_STATE_ABNORMAL
        assert after.open_alarm_id == before.open_alarm_id
        assert not (await standby.fitness(device)).fit

        # The new leader evaluates: the same fault raises nothing new, the recovery clears it.
        await standby.stream([sample(device, temperature_c=90.0)])
        assert await open_alarm_rows(database_url, device) == 1
        assert await open_alarm_rows(database_url, other) == 1
        await standby.stream([sample(device)])
        assert (await standby.health(device)).state == device_pb2.HEALTH_STATE_GOOD
        assert await open_alarm_rows(database_url, device) == 0
    finally:
        await leader.close()
        await standby.close()
