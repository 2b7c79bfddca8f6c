"""On a standby replica, every device-monitor RPC goes on to the leader as its caller sent it.

A Kubernetes Service spreads connections over every ready replica, and gRPC keeps a connection
for many calls, so a caller may well be talking to a standby. The standby checks the caller
like any replica (authentication, role, limits: the interceptors ran before this), then makes
the same call on the leader with the caller's own credentials and trace context, and answers
with the leader's reply or error (status details included). A call that was already forwarded
is never forwarded again: a replica that lost the lease meanwhile answers UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from orderline_runtime.rpc.client import open_channel

FORWARDED = "x-orderline-forwarded-by"
# The caller's credentials and trace context; nothing a replica adds itself.
_PASSED_ON = ("authorization", "traceparent", "tracestate", "baggage")


class LeaderForwarding:
    """Wraps a servicer: each method runs here when this replica leads (or knows no leader, or
    the call was forwarded already), else on the leader at `leader()`."""

    def __init__(self, leader: Callable[[], str | None], replica: str) -> None:
        self.leader = leader
        self.replica = replica
        self._channels: dict[str, grpc.aio.Channel] = {}

    def wrap(self, servicer: Any, descriptor: ServiceDescriptor, stub_class: type) -> Any:
        forwarding = self

        class Forwarding:
            def __getattr__(self, name: str) -> Any:
                own = getattr(servicer, name)
                if name not in descriptor.methods_by_name:
                    return own

                async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                    target = forwarding._target(context)
                    if target is None:
                        return await own(request, context)
                    stub = stub_class(forwarding._channel(target))
                    return await forwarding._forward(getattr(stub, name), request, context)

                return call

        return Forwarding()

    def _target(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        if any(key == FORWARDED for key, _ in context.invocation_metadata() or ()):
            return None
        return self.leader()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address)
        return channel

    async def _forward(
        self, method: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
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
