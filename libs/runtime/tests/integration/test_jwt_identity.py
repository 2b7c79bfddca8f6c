"""A real service process with JWT settings: a JWKS counts as an identity configuration (the
service serves, and takes tokens signed by the provider's key), and an incomplete one stops it
at start with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import grpc
import pytest
from _jwt_support import AUDIENCE, ISSUER, SigningKey, claims, write_jwks
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc


class Nats(Protocol):
    @property
    def url(self) -> str: ...


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The test session's environment without any Orderline or OTel setting (the root
    conftest turns the development opt-in on for every test), plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
    env.update(
        ORDERLINE_GRPC_PORT="0",
        ORDERLINE_TRACE_DIR=str(tmp_path / "traces"),
        ORDERLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/service.db",
        ORDERLINE_NATS_URL="nats://127.0.0.1:9",
    )
    env.update(settings)
    return env


@contextmanager
def serving(service: str, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """A real service process; yields its address once its health says SERVING."""
    log = cwd / f"{service}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "orderline_" + service.replace("-", "_")],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, log.read_text()[-2000:]
        address = first.split()[-1]
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert process.poll() is None, log.read_text()[-2000:]
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                except grpc.RpcError:
                    status = health_pb2.HealthCheckResponse.UNKNOWN
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"{service} at {address} never became SERVING")
                time.sleep(0.2)
        yield address
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def list_orders(address: str, token: str) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(address) as channel:
        try:
            order_pb2_grpc.OrderServiceStub(channel).ListOrders(
                order_pb2.ListOrdersRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        except grpc.RpcError as err:
            return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def test_a_service_with_a_jwks_serves_and_takes_the_providers_tokens(
    nats_server: Nats, tmp_path: Path
) -> None:
    key = SigningKey.rsa("rsa-1")
    env = clean_env(
        tmp_path,
        ORDERLINE_NATS_URL=nats_server.url,
        ORDERLINE_AUTH_JWKS_FILE=str(write_jwks(tmp_path / "jwks.json", key)),
        ORDERLINE_AUTH_ISSUER=ISSUER,
        ORDERLINE_AUTH_AUDIENCE=AUDIENCE,
        ORDERLINE_AUTH_ROLES_CLAIM="realm_access.roles",
        # Left on by mistake beside a JWKS: it must change nothing.
        ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="true",
    )
    manager = key.sign(claims("maria", roles=None, realm_access={"roles": ["manager"]}))
    with serving("intake", env, tmp_path) as address:
        assert list_orders(address, manager) == (grpc.StatusCode.OK, "")
        code, details = list_orders(address, key.sign(claims("maria", aud="another-app")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "audience" in details
        assert list_orders(address, "dev-manager")[0] == grpc.StatusCode.UNAUTHENTICATED


def test_a_jwks_without_an_audience_refuses_to_start(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        ORDERLINE_AUTH_JWKS_URL="https://idp.example.test/certs",
        ORDERLINE_AUTH_ISSUER=ISSUER,
    )
    result = subprocess.run(
        [sys.executable, "-m", "orderline_archive"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("archive: JWT bearer tokens need ORDERLINE_AUTH_AUDIENCE")
    assert "listening" not in result.stdout
