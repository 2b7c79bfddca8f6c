"""Development tokens only by explicit opt-in, checked on real service processes.

A service started with neither a tokens file nor ORDERLINE_ALLOW_DEVELOPMENT_TOKENS refuses to
start with one line naming both; with the opt-in it serves and takes the development tokens;
with a tokens file those tokens are refused, opt-in or not.
"""

from __future__ import annotations

import base64
import json
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
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc

SERVICES = ("intake", "provisioning", "device-monitor", "archive", "reporting")
REFUSAL_VARIABLES = ("ORDERLINE_AUTH_TOKENS_FILE", "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS")


class Nats(Protocol):
    @property
    def url(self) -> str: ...


def module(service: str) -> str:
    return "orderline_" + service.replace("-", "_")


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The test session's environment without any Orderline or OTel setting (the root
    conftest turns the opt-in on for every test), plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
    env.update(
        ORDERLINE_GRPC_PORT="0",
        ORDERLINE_TRACE_DIR=str(tmp_path / "traces"),
        ORDERLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/service.db",
        # Unreachable: a start that got past the identity check would never be SERVING.
        ORDERLINE_NATS_URL="nats://127.0.0.1:9",
    )
    env.update(settings)
    return env


def run_to_exit(service: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module(service)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_without_identity_configuration_refuses_to_start(
    service: str, tmp_path: Path
) -> None:
    result = run_to_exit(service, clean_env(tmp_path), tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith(f"{service}: no identity configuration")
    for variable in REFUSAL_VARIABLES:
        assert variable in line
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout


def test_the_opt_in_set_to_false_is_no_opt_in(tmp_path: Path) -> None:
    env = clean_env(tmp_path, ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="false")
    result = run_to_exit("intake", env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "no identity configuration" in result.stderr


def test_provisioning_with_tokens_but_no_service_token_refuses_to_start(tmp_path: Path) -> None:
    """It calls other services; outside development there is no token to fall back on."""
    env = clean_env(tmp_path, ORDERLINE_AUTH_TOKENS_FILE=str(tokens_file(tmp_path)))
    result = run_to_exit("provisioning", env, tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("provisioning: ORDERLINE_SERVICE_TOKEN is unset")
    assert "Traceback" not in result.stderr


def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"mgr-s3cret": {"subject": "maria", "roles": ["manager"]}}))
    return path


@contextmanager
def serving_intake(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """A real intake process; yields its address once its health says SERVING."""
    log = cwd / "intake.log"
    with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "orderline_intake"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "intake listening on 127.0.0.1:<port>"
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
                    pytest.fail(f"intake at {address} never became SERVING")
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


def list_orders(address: str, token: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        try:
            order_pb2_grpc.OrderServiceStub(channel).ListOrders(
                order_pb2.ListOrdersRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_with_the_opt_in_a_service_serves_and_takes_development_tokens(
    nats_server: Nats, tmp_path: Path
) -> None:
    env = clean_env(
        tmp_path,
        ORDERLINE_NATS_URL=nats_server.url,
        ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="true",
    )
    with serving_intake(env, tmp_path) as address:
        assert list_orders(address, "dev-manager") == grpc.StatusCode.OK
        assert list_orders(address, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("opt_in", ["false", "true"])
def test_with_a_tokens_file_development_tokens_are_refused(
    opt_in: str, nats_server: Nats, tmp_path: Path
) -> None:
    # Intake's own secret, as a deployment gives it (the development key comes only with the
    # development opt-in).
    hash_key = tmp_path / "customer-hash.key"
    hash_key.write_bytes(os.urandom(48))
    pii_keys = tmp_path / "pii.keys"
    pii_keys.write_text(f"test: {base64.b64encode(os.urandom(32)).decode()}\n")
    env = clean_env(
        tmp_path,
        ORDERLINE_NATS_URL=nats_server.url,
        ORDERLINE_AUTH_TOKENS_FILE=str(tokens_file(tmp_path)),
        ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=opt_in,
        ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE=str(hash_key),
        ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_ID="test",
        ORDERLINE_INTAKE_PII_KEYS_FILE=str(pii_keys),
        ORDERLINE_INTAKE_PII_KEY_ID="test",
    )
    with serving_intake(env, tmp_path) as address:
        assert list_orders(address, "mgr-s3cret") == grpc.StatusCode.OK
        assert list_orders(address, "dev-manager") == grpc.StatusCode.UNAUTHENTICATED
