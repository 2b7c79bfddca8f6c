"""Mutual TLS on the gRPC edge, over real loopback sockets, with certificates made at test time:
a client with a certificate signed by the services' CA is served; a plaintext client, a TLS
client without a certificate, and one whose certificate another CA signed are refused before
any RPC runs; a client checks the server's certificate against the CA too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline_devtools.certificates import Authority, issue, make_ca
from orderline_runtime.rpc.auth import TokenAuthenticator
from orderline_runtime.rpc.client import open_channel
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.rpc.tls import TlsConfig, client_tls, set_client_tls
from orderline_runtime.settings import ServiceSettings


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca")


@pytest.fixture
async def server(ca: Authority, tmp_path: Path) -> AsyncIterator[GrpcServer]:
    grpc_server = GrpcServer(
        authenticator=TokenAuthenticator.development(),
        policy={},
        max_concurrent_rpcs=8,
        tls=issue(ca, tmp_path / "server", "intake"),
    )
    await grpc_server.start("127.0.0.1", 0)
    await grpc_server.set_serving(True)
    yield grpc_server
    await grpc_server.stop(0)


async def check(channel: grpc.aio.Channel) -> int:
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return int(reply.status)


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(channel)
    return caught.value.code()


async def test_a_client_with_a_certificate_signed_by_the_ca_is_served(
    server: GrpcServer, ca: Authority, tmp_path: Path
) -> None:
    client = issue(ca, tmp_path / "client", "provisioning")
    status = await check(open_channel(f"localhost:{server.port}", client))
    assert status == health_pb2.HealthCheckResponse.SERVING


async def test_the_process_identity_is_presented_on_every_channel_it_opens(
    server: GrpcServer, ca: Authority, tmp_path: Path
) -> None:
    set_client_tls(issue(ca, tmp_path / "client", "provisioning"))
    try:
        status = await check(open_channel(f"localhost:{server.port}"))
    finally:
        set_client_tls(None)
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert client_tls() is None


async def test_a_plaintext_client_is_refused(server: GrpcServer) -> None:
    channel = grpc.aio.insecure_channel(f"localhost:{server.port}")
    assert await refused(channel) == grpc.StatusCode.UNAVAILABLE


async def test_a_tls_client_without_a_certificate_is_refused(
    server: GrpcServer, ca: Authority
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
    channel = grpc.aio.secure_channel(f"localhost:{server.port}", credentials)
    assert await refused(channel) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_whose_certificate_another_ca_signed_is_refused(
    server: GrpcServer, ca: Authority, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other-ca", "someone-else")
    forged = issue(other, tmp_path / "forged", "provisioning")
    # It trusts the right CA for the server, but presents a certificate the server does not.
    client = TlsConfig(forged.cert_file, forged.key_file, ca.cert_file)
    assert await refused(open_channel(f"localhost:{server.port}", client)) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_a_client_refuses_a_server_its_ca_did_not_sign(
    server: GrpcServer, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other-ca", "someone-else")
    client = issue(other, tmp_path / "client", "provisioning")
    assert await refused(open_channel(f"localhost:{server.port}", client)) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_without_client_auth_a_tls_client_without_a_certificate_is_served(
    ca: Authority, tmp_path: Path
) -> None:
    tls = issue(ca, tmp_path / "server", "intake", require_client_auth=False)
    grpc_server = GrpcServer(
        authenticator=TokenAuthenticator.development(), policy={}, max_concurrent_rpcs=8, tls=tls
    )
    await grpc_server.start("127.0.0.1", 0)
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
        status = await check(grpc.aio.secure_channel(f"localhost:{grpc_server.port}", credentials))
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await grpc_server.stop(0)


def test_settings_refuse_half_a_tls_configuration(
    ca: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = issue(ca, tmp_path / "svc", "intake")
    monkeypatch.setenv("ORDERLINE_TLS_CERT_FILE", str(tls.cert_file))
    with pytest.raises(ValueError, match="go together"):
        ServiceSettings()
    monkeypatch.setenv("ORDERLINE_TLS_KEY_FILE", str(tls.key_file))
    with pytest.raises(ValueError, match="ORDERLINE_TLS_CA_FILE"):
        ServiceSettings()  # client certificates are required by default: the CA is needed
    monkeypatch.setenv("ORDERLINE_TLS_CA_FILE", str(ca.cert_file))
    assert ServiceSettings().tls_config() == tls
    monkeypatch.setenv("ORDERLINE_TLS_REQUIRE_CLIENT_AUTH", "false")
    monkeypatch.delenv("ORDERLINE_TLS_CA_FILE")
    assert ServiceSettings().tls_config() == TlsConfig(
        tls.cert_file, tls.key_file, None, require_client_auth=False
    )
    for name in ("CERT", "KEY"):
        monkeypatch.delenv(f"ORDERLINE_TLS_{name}_FILE")
    assert ServiceSettings().tls_config() is None


async def test_the_health_port_answers_plaintext_probes_and_nothing_else(
    ca: Authority, tmp_path: Path
) -> None:
    grpc_server = GrpcServer(
        authenticator=TokenAuthenticator.development(),
        policy={},
        max_concurrent_rpcs=8,
        tls=issue(ca, tmp_path / "server", "intake"),
    )
    await grpc_server.start("127.0.0.1", 0, health_port=0)
    try:
        probe = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.health_port}")
        assert await check(probe) == health_pb2.HealthCheckResponse.NOT_SERVING
        await grpc_server.set_serving(True)
        probe = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.health_port}")
        assert await check(probe) == health_pb2.HealthCheckResponse.SERVING
        # Only health there: the services' RPCs stay behind mutual TLS.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.health_port}") as channel:
            get_order = channel.unary_unary("/orderline.order.v1.OrderService/GetOrder")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await get_order(b"", timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await grpc_server.stop(0)
