"""Helpers for device-monitor's integration tests: a client of the running service over real
gRPC and real NATS, sample readings, polling and error-detail parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import nats
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.events.v1 import envelope_pb2
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_devtools.waiting import eventually as wait_for
from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.service import Service

T = TypeVar("T")

WAIT_SECONDS = 15.0


def ago(seconds: float) -> datetime:
    """A sample time in the past: pending and keep-firing periods are measured on sample times,
    so a test shows a fault persisting by dating its samples, never by sleeping."""
    return datetime.now(UTC) - timedelta(seconds=seconds)


def sample(device_id: str, at: datetime | None = None, **values: Any) -> device_pb2.TelemetrySample:
    """A good reading unless `values` say otherwise, observed now unless `at` says when."""
    fields: dict[str, Any] = {
        "noise_db": 35.0,
        "vibration_mm_s": 0.8,
        "display_ok": True,
        "key_latency_ms": 60.0,
        "line_error_rate": 0.0005,
        "line_up": True,
        "cpu_pct": 20.0,
        "memory_pct": 45.0,
        "disk_pct": 40.0,
        "temperature_c": 48.0,
        "safety_ok": True,
    }
    fields.update(values)
    msg = device_pb2.TelemetrySample(device_id=device_id, **fields)
    msg.observed_at.FromDatetime(at or datetime.now(UTC))
    return msg


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by the BadRequest detail of an INVALID_ARGUMENT error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin trailer"
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], what: str) -> T:
    return await wait_for(probe, check, WAIT_SECONDS, what)


class DeviceMonitor:
    """A running device-monitor and clients that speak to it as other services would."""

    def __init__(self, service: Service, address: str, nats_url: str) -> None:
        self.service = service
        self.address = address
        self.nats_url = nats_url
        self.channel = grpc.aio.insecure_channel(address)
        self.ingest = device_pb2_grpc.TelemetryIngestServiceStub(self.channel)
        self.health_stub = device_pb2_grpc.DeviceHealthServiceStub(self.channel)
        self._nc: Any = None

    async def close(self) -> None:
        await self.channel.close()
        if self._nc is not None:
            await self._nc.close()

    async def js(self) -> Any:
        if self._nc is None:
            self._nc = await nats.connect(self.nats_url)
        return self._nc.jetstream()

    # --- gRPC ------------------------------------------------------------------------------

    async def stream(
        self, *batches: list[device_pb2.TelemetrySample], token: str | None = "dev-service"
    ) -> int:
        async def requests() -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
            for batch in batches:
                yield device_pb2.StreamTelemetryRequest(samples=batch)

        reply = await self.ingest.StreamTelemetry(requests(), metadata=bearer(token), timeout=10)
        return int(reply.accepted)

    async def health(self, device_id: str, token: str | None = "dev-clerk") -> Any:
        reply = await self.health_stub.GetDeviceHealth(
            device_pb2.GetDeviceHealthRequest(device_id=device_id),
            metadata=bearer(token),
            timeout=5,
        )
        return reply.health

    async def fitness(
        self, device_id: str, order_id: str = "", token: str | None = "dev-service"
    ) -> Any:
        return await self.health_stub.CheckFitness(
            device_pb2.CheckFitnessRequest(device_id=device_id, order_id=order_id),
            metadata=bearer(token),
            timeout=5,
        )

    async def alarms(self, token: str | None = "dev-engineer", **request: Any) -> Any:
        return await self.health_stub.ListAlarms(
            device_pb2.ListAlarmsRequest(**request), metadata=bearer(token), timeout=5
        )

    async def ticket_call(self, rpc: str, token: str = "dev-maintenance", **request: Any) -> Any:
        """One of the ticket and anomaly RPCs by name, e.g. ("ProgressTicket", ticket_id=…)."""
        message = getattr(device_pb2, f"{rpc}Request")(**request)
        method = getattr(self.health_stub, rpc)
        return await method(message, metadata=bearer(token), timeout=5)

    async def tickets(self, token: str = "dev-engineer", **request: Any) -> list[Any]:
        return list((await self.ticket_call("ListTickets", token, **request)).tickets)

    async def anomalies(self, token: str = "dev-engineer", **request: Any) -> list[Any]:
        return list((await self.ticket_call("ListAnomalies", token, **request)).anomalies)

    # --- NATS ------------------------------------------------------------------------------

    async def device_events(self) -> list[envelope_pb2.Envelope]:
        """Every message on the DEVICE stream, in order, as another service would read it."""
        js = await self.js()
        info = await js.stream_info("DEVICE")
        envelopes = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            raw = await js.get_msg("DEVICE", seq)
            env = envelope_pb2.Envelope()
            env.ParseFromString(raw.data)
            assert raw.subject == f"orderline.{env.type}"
            assert raw.headers is not None and raw.headers.get("Nats-Msg-Id") == env.id
            envelopes.append(env)
        return envelopes

    async def wait_for_event(self, event_type: str, count: int = 1) -> list[envelope_pb2.Envelope]:
        """All device events once `count` events of `event_type` are on the stream."""
        return await eventually(
            self.device_events,
            lambda events: sum(e.type == event_type for e in events) >= count,
            f"{count} x {event_type} on DEVICE",
        )

    async def publish(
        self,
        event_type: str,
        payload: Message,
        *,
        producer: str,
        order_id: str = "",
        device_id: str = "",
        event_id: str | None = None,
        msg_id: str | None = None,
    ) -> str:
        env = build_envelope(
            event_type,
            payload,
            producer=producer,
            order_id=order_id,
            device_id=device_id,
            event_id=event_id,
        )
        js = await self.js()
        await js.publish(
            f"orderline.{event_type}",
            env.SerializeToString(),
            headers={"Nats-Msg-Id": msg_id or env.id},
        )
        return env.id

    # --- database --------------------------------------------------------------------------

    async def count(self, table: Any) -> int:
        async with self.service.db.reading() as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar())

    async def transitions(self, device_id: str) -> list[dict[str, Any]]:
        async with self.service.db.reading() as session:
            return await DeviceRepository(session).transitions_of_device(device_id)


Launcher = Callable[..., AbstractAsyncContextManager[DeviceMonitor]]
