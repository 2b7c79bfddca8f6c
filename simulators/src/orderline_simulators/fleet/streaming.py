"""Streams a sample of every device to TelemetryIngestService, reconnecting forever."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import grpc

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_runtime.rpc.tls import TlsConfig
from orderline_simulators.common.logs import get_logger
from orderline_simulators.fleet.convert import sample_to_proto
from orderline_simulators.fleet.domain import Fleet
from orderline_simulators.fleet.telemetry import TelemetryGenerator

log = get_logger("telemetry-stream")

BACKOFF_INITIAL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0
# A stream is closed and reopened after this many batches, so every call has a deadline and
# the receiver's `accepted` count is logged now and then.
BATCHES_PER_STREAM = 60
# How long closing a stream may take on top of its batches.
STREAM_DEADLINE_SLACK_SECONDS = 30.0
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX_SECONDS * 1000)),
)


def _now() -> datetime:
    return datetime.now(UTC)


class TelemetryStreamer:
    """One client stream at a time; one StreamTelemetryRequest per interval with every device."""

    def __init__(
        self,
        fleet: Fleet,
        generator: TelemetryGenerator,
        *,
        target: str,
        interval_seconds: float,
        token: str,
        batches_per_stream: int = BATCHES_PER_STREAM,
        clock: Callable[[], datetime] = _now,
        tls: TlsConfig | None = None,
    ) -> None:
        self.fleet = fleet
        # Mutual TLS to device-monitor when the fleet has a certificate; else plaintext.
        self.tls = tls
        self.generator = generator
        self.target = target
        self.interval_seconds = interval_seconds
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.batches_per_stream = batches_per_stream
        self.clock = clock
        self.batches_sent = 0

    def _channel(self) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(
            self.target, self.tls.channel_credentials(), options=CHANNEL_OPTIONS
        )

    def batch(self) -> device_pb2.StreamTelemetryRequest:
        at = self.clock()
        return device_pb2.StreamTelemetryRequest(
            samples=[
                sample_to_proto(self.generator.sample(d.device_id, d.faults, at, model=d.model))
                for d in self.fleet.devices()
            ]
        )

    async def run(self) -> None:
        """Runs until cancelled. Unreachable target or broken stream: log, back off, retry."""
        backoff = BACKOFF_INITIAL_SECONDS
        failures = 0
        while True:
            # A fresh channel per connection attempt, with gRPC's own reconnect backoff capped:
            # the target may start long after us and must be picked up within seconds.
            async with self._channel() as channel:
                stub = cast(
                    "device_pb2_grpc.TelemetryIngestServiceAsyncStub",
                    device_pb2_grpc.TelemetryIngestServiceStub(channel),
                )
                while True:
                    try:
                        sent, accepted = await self._one_stream(stub)
                    except grpc.aio.AioRpcError as exc:
                        failures += 1
                        # Loud at first, then once a minute or so while the target stays away.
                        emit = log.warning if failures <= 3 or failures % 12 == 0 else log.debug
                        emit(
                            "telemetry stream failed",
                            target=self.target,
                            code=exc.code().name,
                            details=exc.details(),
                            failures=failures,
                            retry_in_seconds=round(backoff, 2),
                        )
                        break
                    if failures:
                        log.info(
                            "telemetry stream recovered", target=self.target, failures=failures
                        )
                    failures = 0
                    backoff = BACKOFF_INITIAL_SECONDS
                    log.info(
                        "telemetry stream closed", target=self.target, sent=sent, accepted=accepted
                    )
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _one_stream(
        self, stub: device_pb2_grpc.TelemetryIngestServiceAsyncStub
    ) -> tuple[int, int]:
        deadline = self.interval_seconds * self.batches_per_stream + STREAM_DEADLINE_SLACK_SECONDS
        call = stub.StreamTelemetry(metadata=self.metadata, timeout=deadline)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            sent = 0
            while sent < self.batches_per_stream:
                try:
                    await call.write(self.batch())
                except asyncio.InvalidStateError:
                    break  # the receiver ended the stream early (with OK): read its answer
                sent += 1
                self.batches_sent += 1
                if sent == 1:
                    log.info("telemetry stream open", target=self.target, devices=len(self.fleet))
                if call.done():
                    break
                delay = start + sent * self.interval_seconds - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if not call.done():
                await call.done_writing()
            response = await call
            return sent, response.accepted
        except BaseException:
            call.cancel()
            raise
