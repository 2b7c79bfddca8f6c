"""Outgoing gRPC: channels, traced unary calls, the service's bearer token and a deadline.

A call goes out under a CLIENT span named as OpenTelemetry's gRPC instrumentation names it
(`/package.Service/Method`, with `rpc.*` attributes), and carries the trace context in its
metadata, so the callee's SERVER span is its child. We open the span around the call here
instead of putting the instrumentation's interceptors on the channel: gRPC's intercepted-call
machinery cost more than the span itself (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from opentelemetry.trace import SpanKind, StatusCode

from orderline_runtime.rpc.tls import TlsConfig, client_tls
from orderline_runtime.telemetry import inject_current, tracer

T = TypeVar("T")

_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 1)]


def open_channel(address: str, tls: TlsConfig | None = None) -> grpc.aio.Channel:
    """A channel to a peer; calls on it are traced by `traced_call`. With `tls` (by default
    the process's own, `set_client_tls`) it is mutual TLS; otherwise plaintext."""
    tls = tls or client_tls()
    if tls is None:
        return grpc.aio.insecure_channel(address, options=_OPTIONS)
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=_OPTIONS)


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
