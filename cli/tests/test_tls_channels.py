"""The CLI's channels with mutual TLS, against a real TLS server requiring client certificates:
with ORDERLINE_TLS_* set the CLI presents its certificate and is served; without them it
speaks plaintext and is refused; half a configuration is one line and exit code 2."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline_cli import channels
from orderline_devtools.certificates import issue, make_ca
from orderline_runtime.rpc.auth import TokenAuthenticator
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.rpc.tls import TlsConfig


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, TlsConfig]]:
    """A TLS server on its own event loop thread (the CLI's channels are synchronous)."""
    ca = make_ca(tmp_path / "ca")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tls = issue(ca, tmp_path / "server", "intake")

    async def start() -> tuple[GrpcServer, int]:
        # Made on the loop that serves it: grpc.aio binds a server to the running loop.
        server = GrpcServer(
            authenticator=TokenAuthenticator.development(),
            policy={},
            max_concurrent_rpcs=8,
            tls=tls,
        )
        port = await server.start("127.0.0.1", 0)
        await server.set_serving(True)
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield port, issue(ca, tmp_path / "cli", "cli")
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


@pytest.fixture(autouse=True)
def fresh_tls() -> Iterator[None]:
    channels.client_tls.cache_clear()
    yield
    channels.client_tls.cache_clear()


def check(address: str) -> int:
    with channels.open_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return int(reply.status)


def test_with_its_certificate_the_cli_is_served(
    tls_server: tuple[int, TlsConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cli = tls_server
    monkeypatch.setenv("ORDERLINE_TLS_CERT_FILE", str(cli.cert_file))
    monkeypatch.setenv("ORDERLINE_TLS_KEY_FILE", str(cli.key_file))
    monkeypatch.setenv("ORDERLINE_TLS_CA_FILE", str(cli.ca_file))
    assert check(f"localhost:{port}") == health_pb2.HealthCheckResponse.SERVING


def test_without_a_certificate_the_cli_is_refused(
    tls_server: tuple[int, TlsConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = tls_server
    for name in ("CERT", "KEY", "CA"):
        monkeypatch.delenv(f"ORDERLINE_TLS_{name}_FILE", raising=False)
    with pytest.raises(grpc.RpcError) as caught:
        check(f"localhost:{port}")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_half_a_configuration_stops_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORDERLINE_TLS_CERT_FILE", "/etc/cli.crt")
    monkeypatch.delenv("ORDERLINE_TLS_KEY_FILE", raising=False)
    with pytest.raises(SystemExit) as exited:
        channels.open_channel("localhost:1")
    assert exited.value.code == 2
    assert "ORDERLINE_TLS_KEY_FILE" in capsys.readouterr().err
