"""Renewed certificates take effect without a restart, over real loopback sockets, with
certificates made at test time.

A server reads its certificate, key and CA bundle at each new connection's TLS handshake (files
unchanged: a stat each), so a certificate replaced in place, as cert-manager renews one (a
Secret volume's `..data` symlink swapped) or by plain overwrite, is served from the next
connection on, and a CA rotation's bundle decides which client certificates it accepts. A
replacement that is not usable (a key that does not match the certificate, a truncated file)
keeps the previous certificate, with one warning naming the file. A client channel, kept for
the process's life as the services' peer clients keep theirs, presents its renewed
certificate and trusts its new CA from its next call on.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline_devtools.certificates import Authority, issue, make_ca
from orderline_devtools.waiting import eventually
from orderline_runtime.rpc.auth import TokenAuthenticator
from orderline_runtime.rpc.client import open_channel
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.rpc.tls import TlsConfig

SERVING = int(health_pb2.HealthCheckResponse.SERVING)

# One state of a certificate's files: (certificate chain, private key, CA bundle), PEM.
Pem = tuple[bytes, bytes, bytes]


class Mount:
    """A directory holding tls.crt, tls.key and ca.crt, as a process is configured with.

    `secret_volume`: laid out as the kubelet lays out a Secret volume (each name a symlink into
    `..data`, itself a symlink to a directory of the files), updated as the kubelet updates it:
    a new directory, then `..data` replaced by a rename, all three files changing at once.
    Otherwise plain files, updated by overwriting each in turn (not atomic)."""

    def __init__(self, directory: Path, pem: Pem, *, secret_volume: bool) -> None:
        self.directory = directory
        self.secret_volume = secret_volume
        self.generation = 0
        directory.mkdir(parents=True)
        if secret_volume:
            self._write_generation(pem)
            os.symlink(self._generation_name(), directory / "..data")
            for name in ("tls.crt", "tls.key", "ca.crt"):
                os.symlink(f"..data/{name}", directory / name)
        else:
            self.write(cert=pem[0], key=pem[1], ca=pem[2])

    def _generation_name(self) -> str:
        return f"..generation_{self.generation}"

    def _write_generation(self, pem: Pem) -> None:
        target = self.directory / self._generation_name()
        target.mkdir()
        for name, content in zip(("tls.crt", "tls.key", "ca.crt"), pem, strict=True):
            (target / name).write_bytes(content)

    def tls(self) -> TlsConfig:
        d = self.directory
        return TlsConfig(d / "tls.crt", d / "tls.key", d / "ca.crt")

    def replace(self, pem: Pem) -> None:
        """All three files, as this mount's kind is updated."""
        if not self.secret_volume:
            self.write(cert=pem[0], key=pem[1], ca=pem[2])
            return
        self.generation += 1
        self._write_generation(pem)
        staged = self.directory / "..data_tmp"
        os.symlink(self._generation_name(), staged)
        os.replace(staged, self.directory / "..data")

    def write(
        self, *, cert: bytes | None = None, key: bytes | None = None, ca: bytes | None = None
    ) -> None:
        """Overwrites the given files in place, one after the other."""
        for name, content in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)):
            if content is not None:
                (self.directory / name).write_bytes(content)


def pem(tls: TlsConfig, *cas: Authority) -> Pem:
    """`tls`'s certificate and key, with a CA bundle of `cas`."""
    bundle = b"".join(ca.cert_file.read_bytes() for ca in cas)
    return tls.cert_file.read_bytes(), tls.key_file.read_bytes(), bundle


@pytest.fixture
def ca1(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca1", "orderline-ca-one")


@pytest.fixture
def ca2(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca2", "orderline-ca-two")


@pytest.fixture
def certificate(tmp_path: Path) -> Callable[[Authority, str], TlsConfig]:
    """A new certificate for `name` signed by a CA, in a directory of its own."""
    made = iter(range(1_000))

    def make(ca: Authority, name: str) -> TlsConfig:
        return issue(ca, tmp_path / f"issued-{next(made)}", name)

    return make


async def start_server(tls: TlsConfig) -> GrpcServer:
    server = GrpcServer(
        authenticator=TokenAuthenticator.development(), policy={}, max_concurrent_rpcs=8, tls=tls
    )
    await server.start("127.0.0.1", 0)
    await server.set_serving(True)
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[GrpcServer]]:
    started: list[GrpcServer] = []
    yield started
    for server in started:
        await server.stop(0)


async def check(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    return int(reply.status)


async def served(port: int, client: TlsConfig) -> bool:
    """A new channel (a new connection, a new handshake) with `client`'s files: served, or
    refused at the handshake (UNAVAILABLE; anything else fails the test)."""
    async with open_channel(f"localhost:{port}", client) as channel:
        try:
            return await check(channel) == SERVING
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return False


def unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("secret_volume", [True, False], ids=["symlink-swap", "overwrite"])
async def test_a_certificate_from_a_new_ca_is_served_without_a_restart(
    secret_volume: bool,
    tmp_path: Path,
    ca1: Authority,
    ca2: Authority,
    certificate: Callable[[Authority, str], TlsConfig],
    servers: list[GrpcServer],
) -> None:
    mount = Mount(
        tmp_path / "server", pem(certificate(ca1, "intake"), ca1), secret_volume=secret_volume
    )
    server = await start_server(mount.tls())
    servers.append(server)
    old_client = certificate(ca1, "provisioning")  # trusts CA1 only, and CA1 signed it
    new_client = certificate(ca2, "provisioning")  # trusts CA2 only, and CA2 signed it
    assert await served(server.port, old_client)
    assert not await served(server.port, new_client)
    # A connection made before the renewal, kept open across it.
    open_before = open_channel(f"localhost:{server.port}", old_client)
    assert await check(open_before) == SERVING

    # The rotation: a certificate CA2 signed, and a bundle with both CAs for the clients'.
    mount.replace(pem(certificate(ca2, "intake"), ca1, ca2))

    # The next handshake presents the new certificate: a client trusting only CA2 is served,
    # one trusting only CA1 no longer is. The server was not restarted.
    assert await served(server.port, new_client)
    assert not await served(server.port, old_client)
    # Connections already open keep the certificate they were made with.
    assert await check(open_before) == SERVING
    await open_before.close()


@pytest.mark.parametrize("secret_volume", [True, False], ids=["symlink-swap", "overwrite"])
async def test_an_unusable_replacement_keeps_the_previous_certificate(
    secret_volume: bool,
    tmp_path: Path,
    ca1: Authority,
    ca2: Authority,
    certificate: Callable[[Authority, str], TlsConfig],
    servers: list[GrpcServer],
) -> None:
    mount = Mount(
        tmp_path / "server", pem(certificate(ca1, "intake"), ca1), secret_volume=secret_volume
    )
    server_tls = mount.tls()
    server = await start_server(server_tls)
    servers.append(server)
    old_client, new_client = certificate(ca1, "provisioning"), certificate(ca2, "provisioning")
    renewed = certificate(ca2, "intake")

    # The bundle first (usable on its own: the old certificate with both CAs)...
    mount.write(ca=pem(renewed, ca1, ca2)[2])
    # ... then the new key beside the old certificate: a pair that does not match.
    mount.write(key=renewed.key_file.read_bytes())
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # three handshakes, one warning for the one change
            assert await served(server.port, old_client)
            assert not await served(server.port, new_client)
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1, logs
    assert warnings[0]["file"] == str(server_tls.key_file)
    assert "does not match" in warnings[0]["reason"]

    # A truncated certificate (half-written): the previous one still served, the file named.
    cert = renewed.cert_file.read_bytes()
    with structlog.testing.capture_logs() as logs:
        mount.write(cert=cert[: len(cert) // 2])
        assert await served(server.port, old_client)
    assert [entry["file"] for entry in logs if entry["log_level"] == "warning"] == [
        str(server_tls.cert_file)
    ]

    # Its whole content: the pair matches again and is served from the next handshake.
    mount.write(cert=cert)
    assert await served(server.port, new_client)
    assert not await served(server.port, old_client)
    # Unchanged files are not read again: the same material, looked at by a stat.
    assert server_tls.files.current() is server_tls.files.current()


@pytest.mark.parametrize("secret_volume", [True, False], ids=["symlink-swap", "overwrite"])
async def test_a_kept_channel_presents_its_renewed_certificate_from_its_next_call(
    secret_volume: bool,
    tmp_path: Path,
    ca1: Authority,
    ca2: Authority,
    certificate: Callable[[Authority, str], TlsConfig],
    servers: list[GrpcServer],
) -> None:
    server_mount = Mount(
        tmp_path / "server", pem(certificate(ca1, "intake"), ca1), secret_volume=secret_volume
    )
    server = await start_server(server_mount.tls())
    servers.append(server)
    client_mount = Mount(
        tmp_path / "client",
        pem(certificate(ca1, "provisioning"), ca1),
        secret_volume=secret_volume,
    )
    # One channel and one stub for the whole test, as a service's peer client keeps them.
    async with open_channel(f"localhost:{server.port}", client_mount.tls()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        async def call() -> int:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            return int(reply.status)

        assert await call() == SERVING

        # The client's renewal comes first: a certificate CA2 signed, trusting CA2 only. Its
        # next call is a new connection with the new files: the server's certificate (CA1's)
        # is no longer trusted. (The channel it replaces would still have been served.)
        client_mount.replace(pem(certificate(ca2, "provisioning"), ca2))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        # Then the server's: the same stub is served again (once the channel's reconnection
        # backoff lets it try again), both sides on CA2 and neither restarted.
        server_mount.replace(pem(certificate(ca2, "intake"), ca2))
        assert (
            await eventually(call, retry=unavailable, what="the renewed pair to connect") == SERVING
        )
