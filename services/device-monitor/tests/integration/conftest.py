"""device-monitor run in-process on a real NATS server and a real database, driven over real gRPC
and real NATS as its callers and producers would."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orderline_device_monitor.app.agent import DeviceAgent
from orderline_device_monitor.bootstrap import build
from orderline_device_monitor.domain.rules import RuleSet
from orderline_device_monitor.settings import DeviceMonitorSettings
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.telemetry import OrderIdSpanProcessor

sys.path.insert(0, str(Path(__file__).parent))

from device_monitor_harness import DeviceMonitor, Launcher


@pytest.fixture
def launch(nats_server: NatsServer, tmp_path: Path) -> Launcher:
    """Starts device-monitor on the given database; one call per (re)start."""

    @asynccontextmanager
    async def start(
        database_url: str,
        rules: RuleSet | None = None,
        *,
        clock: Clock = system_clock,
        agent: DeviceAgent | None = None,
        **overrides: Any,
    ) -> AsyncIterator[DeviceMonitor]:
        settings = DeviceMonitorSettings(
            service_name="device-monitor",
            grpc_port=free_port(),
            database_url=database_url,
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            shutdown_grace_seconds=2,
            **overrides,
        )
        service = build(settings, rules=rules, clock=clock, agent=agent)
        async with serving(service) as address:
            monitor = DeviceMonitor(service, address, nats_server.url)
            try:
                yield monitor
            finally:
                await monitor.close()

    return start


@pytest_asyncio.fixture
async def monitor(launch: Launcher, db_url: str) -> AsyncIterator[DeviceMonitor]:
    """device-monitor on SQLite and on PostgreSQL."""
    async with launch(db_url) as running:
        yield running


@pytest_asyncio.fixture
async def monitor_sqlite(launch: Launcher, tmp_path: Path) -> AsyncIterator[DeviceMonitor]:
    """device-monitor on SQLite only, for checks that do not depend on the database."""
    async with launch(f"sqlite+aiosqlite:///{tmp_path / 'dm.db'}") as running:
        yield running


@pytest.fixture(scope="session")
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this process. Installs an SDK tracer provider (stamping order ids as
    the services' own does) only when none is installed yet."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(OrderIdSpanProcessor())
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
