"""Fixtures for the runtime's own tests: a database with the messaging tables and a table the
test handlers write to, a connected event bus, a plain NATS client to inspect streams, and an
in-memory span exporter on the global tracer provider.

The real NATS (`nats_server`) and both databases (`db_url`) come from orderline_devtools.testing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orderline_devtools.local import NatsServer
from orderline_runtime.database import Database
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.telemetry import OrderIdSpanProcessor

sys.path.insert(0, str(Path(__file__).parent))

from _runtime_support import Schema, make_schema


@pytest.fixture
def schema() -> Schema:
    return make_schema()


@pytest.fixture
async def db(db_url: str, schema: Schema) -> AsyncIterator[Database]:
    database = Database(db_url)
    async with database.transaction() as conn:
        await conn.run_sync(schema.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[EventBus]:
    event_bus = EventBus(nats_server.url, name="runtime-tests")
    await asyncio.wait_for(event_bus.connect(), timeout=10)
    yield event_bus
    await event_bus.drain()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A plain NATS client, as another service or an operator would use it."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream(timeout=5)


@pytest.fixture(scope="session")
def _session_span_exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "runtime-tests"}))
        provider.add_span_processor(OrderIdSpanProcessor())
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def span_exporter(_session_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (the global provider is set once per process)."""
    _session_span_exporter.clear()
    yield _session_span_exporter
    _session_span_exporter.clear()
