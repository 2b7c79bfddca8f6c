"""Every channel the CLI opens: mutual TLS with the process's certificate when
ORDERLINE_TLS_CERT_FILE and ORDERLINE_TLS_KEY_FILE are set (the services' CA from
ORDERLINE_TLS_CA_FILE checks theirs), plaintext otherwise, as the local stack serves."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

import grpc

from orderline_runtime.rpc.tls import TlsConfig, tls_from_settings


def _path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


@cache
def client_tls() -> TlsConfig | None:
    """The CLI's certificate from the environment, read once; half a configuration is one
    line on stderr and exit code 2, as the services do."""
    try:
        return tls_from_settings(
            _path("ORDERLINE_TLS_CERT_FILE"),
            _path("ORDERLINE_TLS_KEY_FILE"),
            _path("ORDERLINE_TLS_CA_FILE"),
            require_client_auth=False,  # a client asks nothing of its callers
        )
    except ValueError as exc:
        print(f"orderline: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def open_channel(address: str) -> grpc.Channel:
    tls = client_tls()
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.channel_credentials())
