"""One way every CLI verb reaches a service: where it listens, a call with the caller's token
and a deadline, and a failed call turned into the CLI's error output."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from orderline_cli.channels import open_channel
from orderline_cli.layout import SERVICE_PORTS, read_stack_file
from orderline_cli.output import fail_rpc

STATE_DIR = Path(os.environ.get("ORDERLINE_STATE_DIR", "var"))
T = TypeVar("T")


def address(service: str, override: str | None) -> str:
    """An --option, else ORDERLINE_<SERVICE>_ADDRESS, else the running local stack's file,
    else the documented local port."""
    if override:
        return override
    env = os.environ.get(f"ORDERLINE_{service.upper().replace('-', '_')}_ADDRESS")
    if env:
        return env
    info = read_stack_file(STATE_DIR)
    if info:
        return str(info["addresses"][service])  # type: ignore[index]
    return f"127.0.0.1:{SERVICE_PORTS[service]}"


def call(
    service: str,
    stub_type: Callable[[grpc.Channel], Any],
    override: str | None,
    token: str,
    as_json: bool,
    fn: Callable[[Any, dict[str, Any]], T],
    *,
    timeout: float = 10.0,
) -> T:
    """`fn(stub, options)` on a channel to `service`; options carry the token and deadline. A
    failed call prints the server's code and message (and details) and exits."""
    with open_channel(address(service, override)) as channel:
        options = {"metadata": (("authorization", f"Bearer {token}"),), "timeout": timeout}
        try:
            return fn(stub_type(channel), options)
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)


def when(ts: Any, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A protobuf Timestamp for a table cell; "-" when unset."""
    return f"{ts.ToDatetime():{pattern}}" if ts.seconds or ts.nanos else "-"
