"""Outgoing gRPC: traced channels, the service's bearer token, and a deadline on every call."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors


def traced_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        interceptors=aio_client_interceptors(),  # type: ignore[no-untyped-call]
        options=[("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 1)],
    )


def call_options(token: str, timeout: float) -> dict[str, Any]:
    """Keyword arguments for every stub call: `await stub.Method(req, **opts)`."""
    return {"timeout": timeout, "metadata": (("authorization", f"Bearer {token}"),)}
