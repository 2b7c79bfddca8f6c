"""Outgoing gRPC: channels, traced unary calls, the service's bearer token and a deadline.

A call goes out under a CLIENT span named as OpenTelemetry's gRPC instrumentation names it
(`/package.Service/Method`, with `rpc.*` attributes), and carries the trace context in its
metadata, so the callee's SERVER span is its child. We open the span around the call here
instead of putting the instrumentation's interceptors on the channel: gRPC's intercepted-call
machinery cost more than the span itself (docs/performance.md).

A TLS channel follows its certificate files (`orderline_runtime.rpc.tls.CertificateFiles`):
gRPC's channel credentials are fixed for a channel's life, so `open_channel` returns a channel
that, at each call, looks whether the files changed (a stat of each) and, if they did, opens a
new channel with the new certificate, key and CA for this call and the next, and closes the
previous one once the calls still on it have finished. A peer client that keeps its channel
(and stubs on it) for the process's life thus presents a renewed certificate from its next
call on, without any change of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from opentelemetry.trace import SpanKind, StatusCode

from orderline_runtime.rpc.tls import (
    CertificateFiles,
    Material,
    TlsConfig,
    client_tls,
    material_channel_credentials,
)
from orderline_runtime.telemetry import inject_current, tracer

T = TypeVar("T")

_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 1)]

# How long a channel replaced after a certificate change waits for the calls still on it
# (long polls, streams) before it cancels them.
RETIRE_GRACE_SECONDS = 300.0


def open_channel(address: str, tls: TlsConfig | None = None) -> grpc.aio.Channel:
    """A channel to a peer; calls on it are traced by `traced_call`. With `tls` (by default
    the process's own, `set_client_tls`) it is mutual TLS, following the certificate files
    (a renewed certificate or CA is used from the next call on); otherwise plaintext."""
    tls = tls or client_tls()
    if tls is None:
        return grpc.aio.insecure_channel(address, options=_OPTIONS)
    return ReloadingChannel(address, tls.files)


class ReloadingChannel(grpc.aio.Channel):  # type: ignore[misc]
    """A TLS channel that is reopened when its certificate files change (module docstring).

    Stubs made on it hold `_Method`s, which find the channel of the moment at each call; the
    cost per call when nothing changed is a stat of each file."""

    def __init__(self, address: str, files: CertificateFiles) -> None:
        self.address = address
        self._files = files
        self._material = files.current()
        self._channel = self._open(self._material)
        self._closed = False
        # Channels replaced after a change, closing once their calls are done (their tasks).
        self._retiring: dict[asyncio.Task[None], grpc.aio.Channel] = {}

    def _open(self, material: Material) -> grpc.aio.Channel:
        credentials = material_channel_credentials(material)
        return grpc.aio.secure_channel(self.address, credentials, options=_OPTIONS)

    def current(self) -> grpc.aio.Channel:
        """The channel for a call now: reopened first if the files changed since it opened."""
        if self._closed:
            return self._channel  # closed: gRPC refuses the call as on any closed channel
        material = self._files.current()
        if material.version != self._material.version:
            previous = self._channel
            self._material = material
            self._channel = self._open(material)
            retiring = asyncio.get_running_loop().create_task(previous.close(RETIRE_GRACE_SECONDS))
            self._retiring[retiring] = previous
            retiring.add_done_callback(self._retired)
        return self._channel

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def close(self, grace: float | None = None) -> None:
        self._closed = True
        retiring = dict(self._retiring)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        # The replaced channels close now, as this one does, with the same grace.
        await asyncio.gather(*(ch.close(grace) for ch in (self._channel, *retiring.values())))

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _Method:
        return _Method(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _Method:
        return _Method(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> _Method:
        return _Method(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> _Method:
        return _Method(self, "stream_stream", method, args, kwargs)


class _Method:
    """A stub's multi-callable on a ReloadingChannel: made again on the channel of the moment
    when that changed."""

    def __init__(
        self,
        owner: ReloadingChannel,
        kind: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._owner = owner
        self._make = (kind, method, args, kwargs)
        self._on: grpc.aio.Channel | None = None
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._owner.current()
        if channel is not self._on:
            kind, method, made_args, made_kwargs = self._make
            self._callable = getattr(channel, kind)(method, *made_args, **made_kwargs)
            self._on = channel
        return self._callable(*args, **kwargs)


def call_options(token: str, timeout: float) -> dict[str, Any]:
    """Keyword arguments for every stub call: `await stub.Method(req, **opts)`."""
    return {"timeout": timeout, "metadata": (("authorization", f"Bearer {token}"),)}


async def traced_call(
    service: str,
    method: str,
    call: Callable[..., Awaitable[T]],
    request: Any,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    **options: Any,
) -> T:
    """`await call(request)` (a stub's unary method of `service`) under a CLIENT span, with the
    trace context added to `metadata`; failures end the span with the gRPC status code."""
    with tracer("orderline.rpc.client").start_as_current_span(
        f"/{service}/{method}",
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        carried = (*metadata, *inject_current().items())
        try:
            reply = await call(request, metadata=carried, **options)
        except grpc.aio.AioRpcError as exc:
            span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
            span.set_status(StatusCode.ERROR, f"{exc.code().name}: {exc.details() or ''}"[:200])
            raise
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
        return reply
