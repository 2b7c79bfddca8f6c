"""Pytest fixtures shared by every package's tests: a real NATS JetStream server and a real
PostgreSQL server (or the one named by DATABASE_URL), each started once per test session.

`db_url` runs a test on both databases: a fresh SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from orderline_devtools.local import NatsServer, PostgresServer
from orderline_devtools.waiting import eventually
from orderline_runtime.ids import new_id
from orderline_runtime.service import Service


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A fresh server per test (it starts in milliseconds), so durable consumers never see
    another test's events."""
    server = NatsServer(tmp_path_factory.mktemp("nats") / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    server = PostgresServer().start()
    yield server
    server.stop()


def _create_database_at(admin_url: str, name: str) -> str:
    import asyncpg

    url = make_url(admin_url).set(drivername="postgresql+asyncpg")

    async def create() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            database=url.database,
        )  # fmt: skip
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


def new_postgres_database(server: PostgresServer | None) -> str:
    name = "t_" + new_id().replace("-", "")[:24]
    if server is None:
        return _create_database_at(os.environ["DATABASE_URL"], name)
    return server.create_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer | None
) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return new_postgres_database(postgres_server)


@asynccontextmanager
async def serving(service: Service[Any], limit_seconds: float = 30.0) -> AsyncIterator[str]:
    """Runs a service in this event loop until the block ends; yields its gRPC address once
    its health check answers SERVING (database migrated, NATS connected)."""
    task = asyncio.create_task(service.run())

    async def serving_address() -> str:
        if task.done():
            task.result()
            raise RuntimeError(f"{service.name} stopped before serving")
        if not service.grpc.port:
            return ""
        address = f"127.0.0.1:{service.grpc.port}"
        async with grpc.aio.insecure_channel(address) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return ""
        return address if reply.status == health_pb2.HealthCheckResponse.SERVING else ""

    try:
        yield await eventually(
            serving_address, within=limit_seconds, what=f"{service.name} to be SERVING"
        )
    finally:
        service.stop_event.set()
        await asyncio.wait_for(task, timeout=limit_seconds)
