"""The device agent's Reboot over gRPC (``DeviceAgentService.Reboot``, the fleet simulator or
real CPE management), through the runtime's client: the service token, a deadline, a CLIENT
span. Errors become outcomes, never exceptions: a reboot that could not be asked for is
UNAVAILABLE (the device is escalated when its window has passed), one the agent refused is
FAILED."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline_device_monitor.app.agent import ActionResult
from orderline_device_monitor.domain.escalation import DONE, FAILED, UNAVAILABLE
from orderline_runtime.rpc.client import open_channel, traced_call

SERVICE = agent_pb2.DESCRIPTOR.services_by_name["DeviceAgentService"].full_name

_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class GrpcDeviceAgent:
    """A lazily opened channel (it must be created inside the running event loop)."""

    def __init__(self, address: str, call_options: Callable[[], dict[str, Any]]) -> None:
        self.address = address
        self._call_options = call_options
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def _agent(self) -> Any:
        if self._stub is None:
            self._channel = open_channel(self.address)
            self._stub = agent_pb2_grpc.DeviceAgentServiceStub(self._channel)
        return self._stub

    async def reboot(self, device_id: str, idempotency_key: str) -> ActionResult:
        request = agent_pb2.RebootRequest(device_id=device_id, idempotency_key=idempotency_key)
        try:
            options = self._call_options()
        except RuntimeError as exc:
            # No service token to present (ORDERLINE_SERVICE_TOKEN unset).
            return ActionResult(UNAVAILABLE, str(exc)[:500])
        try:
            reply = await traced_call(SERVICE, "Reboot", self._agent().Reboot, request, **options)
        except grpc.aio.AioRpcError as exc:
            outcome = UNAVAILABLE if exc.code() in _TRANSIENT else FAILED
            return ActionResult(outcome, f"{exc.code().name}: {exc.details() or ''}"[:500])
        except (TimeoutError, ConnectionError) as exc:
            return ActionResult(UNAVAILABLE, repr(exc)[:500])
        detail = f"restart {reply.reboots} of the device" + (
            " (replayed)" if reply.replayed else ""
        )
        return ActionResult(DONE, detail)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None
