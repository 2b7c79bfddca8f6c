"""Calls reach the replica that evaluates the device they are about.

A Kubernetes Service spreads connections over every ready replica, and gRPC keeps a connection
for many calls, so a caller may be talking to any replica. Each one checks the caller (the
interceptors ran before this), then:

- `StreamTelemetry`: each batch is split by partition (app/partitions.py); the samples of
  partitions evaluated here are evaluated here, the others go to their owners, one
  `StreamTelemetry` call of one batch per owner, concurrently; the answer adds the samples each
  accepted.
- Calls about one device (`GetDeviceHealth`, `CheckFitness`, `CreateTicket`), an alarm
  (`ClearAlarm`: its device, or for an access node's alarm the node) or a ticket
  (`ProgressTicket`, `ResolveTicket`, `CloseTicket`: its device) run on the owner of that
  device's partition.
- Everything else reads or writes only the database (`ListAlarms`, `AcknowledgeAlarm`,
  `GetTicket`, `ListTickets`, `ListAnomalies`) and is answered here.

A call goes on with the caller's credentials and trace context, and the owner's reply or error
(status details included) is the answer. A forwarded call is never forwarded again: a replica
that no longer evaluates the partition answers UNAVAILABLE (PARTITION_MOVED), which callers
retry. While a partition is being restored here, or its owner is not known (a replica died and
its lease has not expired), a call waits up to 5 s, then is UNAVAILABLE (PARTITION_UNOWNED).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app.ownership import Ownership
from orderline_device_monitor.app.partitions import partition_key, partition_moved
from orderline_device_monitor.domain.health import device_id_problem
from orderline_runtime.errors import Unavailable
from orderline_runtime.rpc.client import open_channel
from orderline_runtime.unit_of_work import UnitOfWorkFactory

FORWARDED = "x-orderline-forwarded-by"
# The caller's credentials and trace context; nothing a replica adds itself.
_PASSED_ON = ("authorization", "traceparent", "tracestate", "baggage")
OWNER_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.05

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_BY_DEVICE = frozenset({"GetDeviceHealth", "CheckFitness", "CreateTicket"})
_BY_TICKET = frozenset({"ProgressTicket", "ResolveTicket", "CloseTicket"})
_BY_ALARM = frozenset({"ClearAlarm"})


def forwarded(context: Context) -> bool:
    return any(key == FORWARDED for key, _ in context.invocation_metadata() or ())


class PartitionRouting:
    def __init__(
        self, uow: UnitOfWorkFactory[DeviceRepository], ownership: Ownership, replica: str
    ) -> None:
        self.uow = uow
        self.ownership = ownership
        self.partitions = ownership.partitions
        self.replica = replica
        self._channels: dict[str, grpc.aio.Channel] = {}
        # The whole fleet, as a batch evaluated here without splitting requires.
        self.every = frozenset(range(self.partitions.count))

    # --- where ---------------------------------------------------------------------------

    async def target(self, partition: int, was_forwarded: bool) -> str | None:
        """The owner's address, or None when the partition is evaluated here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OWNER_WAIT_SECONDS
        while True:
            if partition in self.partitions.owned:
                return None
            if not self.ownership.restoring(partition):
                if was_forwarded:
                    raise partition_moved()
                address = self.ownership.owner_of(partition)
                if address:
                    return address
            if loop.time() >= deadline:
                raise Unavailable(
                    "no device-monitor replica evaluates this device's partition yet; retry",
                    reason="PARTITION_UNOWNED",
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _device_partition(self, method: str, request: Any) -> int | None:
        """The partition a call is about; None when it is answered here (no device, or a bad
        or unknown id: the servicer says what is wrong)."""
        partitions = self.partitions
        if method in _BY_DEVICE:
            device_id = request.device_id
            if device_id_problem(device_id):
                return None
            return await partitions.partition_of_device(self.uow, device_id)
        if method in _BY_ALARM:
            if not request.alarm_id or len(request.alarm_id) > 36:
                return None
            async with self.uow(read_only=True) as tx:
                alarm = await tx.repos.get_alarm(request.alarm_id)
            if alarm is None:
                return None
            if alarm.is_access_node:
                return partitions.of_key(alarm.device_id)
            return await partitions.partition_of_device(self.uow, alarm.device_id)
        if method in _BY_TICKET:
            if not request.ticket_id or len(request.ticket_id) > 36:
                return None
            async with self.uow(read_only=True) as tx:
                ticket = await tx.repos.get_ticket(request.ticket_id)
            if ticket is None:
                return None
            return await partitions.partition_of_device(self.uow, ticket.device_id)
        return None

    # --- DeviceHealthService ----------------------------------------------------------------

    def wrap(self, servicer: Any, descriptor: ServiceDescriptor, stub_class: type) -> Any:
        """Each device-scoped method runs on the owner of its device's partition."""
        routing = self

        class Routed:
            def __getattr__(self, name: str) -> Any:
                own = getattr(servicer, name)
                if name not in descriptor.methods_by_name or name not in (
                    _BY_DEVICE | _BY_ALARM | _BY_TICKET
                ):
                    return own

                async def call(request: Any, context: Context) -> Any:
                    if routing.partitions.all_owned:
                        return await own(request, context)
                    partition = await routing._device_partition(name, request)
                    address = (
                        None
                        if partition is None
                        else await routing.target(partition, forwarded(context))
                    )
                    if address is None:
                        return await own(request, context)
                    method = getattr(stub_class(routing._channel(address)), name)
                    return await routing._forward(method, request, context)

                return call

        return Routed()

    # --- StreamTelemetry --------------------------------------------------------------------

    async def ingest_batch(
        self,
        samples: Sequence[device_pb2.TelemetrySample],
        context: Context,
        evaluate: Callable[[Sequence[device_pb2.TelemetrySample], frozenset[int]], Awaitable[int]],
    ) -> int:
        """Evaluates the batch's samples of partitions owned here (`evaluate` returns how many it
        accepted) and sends the others to their owners; returns how many were accepted."""
        partitions = self.partitions
        of_device = partitions.device_lookup()
        groups: dict[int, list[device_pb2.TelemetrySample]] = {}
        unknown: list[device_pb2.TelemetrySample] = []
        for sample in samples:
            partition = of_device.get(sample.device_id)
            if partition is None:
                unknown.append(sample)
            else:
                groups.setdefault(partition, []).append(sample)
        if unknown:
            keys = await partitions.keys_of(self.uow, {s.device_id for s in unknown})
            for sample in unknown:
                key = keys.get(sample.device_id) or partition_key(
                    sample.device_id, sample.access_node_id
                )
                groups.setdefault(partitions.of_key(key), []).append(sample)
        was_forwarded = forwarded(context)
        here: list[device_pb2.TelemetrySample] = []
        here_partitions: set[int] = set()
        elsewhere: dict[str, list[device_pb2.TelemetrySample]] = {}
        for partition, group in groups.items():
            address = await self.target(partition, was_forwarded)
            if address is None:
                here.extend(group)
                here_partitions.add(partition)
            else:
                elsewhere.setdefault(address, []).extend(group)
        calls: list[Awaitable[int]] = [
            self._send(address, group, context) for address, group in elsewhere.items()
        ]
        if here:
            calls.append(evaluate(here, frozenset(here_partitions)))
        return sum(await asyncio.gather(*calls))

    async def _send(
        self, address: str, samples: list[device_pb2.TelemetrySample], context: Context
    ) -> int:
        async def one() -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
            yield device_pb2.StreamTelemetryRequest(samples=samples)

        stub = device_pb2_grpc.TelemetryIngestServiceStub(self._channel(address))
        reply = await self._forward(stub.StreamTelemetry, one(), context)
        return int(reply.accepted)

    # --- the wire ---------------------------------------------------------------------------

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address)
        return channel

    async def _forward(self, method: Any, request: Any, context: Context) -> Any:
        metadata = [
            (key, value) for key, value in context.invocation_metadata() or () if key in _PASSED_ON
        ]
        metadata.append((FORWARDED, self.replica))
        remaining = context.time_remaining()
        try:
            return await method(request, metadata=metadata, timeout=remaining)
        except grpc.aio.AioRpcError as exc:
            trailing = tuple(exc.trailing_metadata() or ())
            await context.abort(exc.code(), exc.details() or "", trailing)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels = {}
