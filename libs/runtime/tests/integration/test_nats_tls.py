"""The NATS connection over TLS, on a real nats-server requiring TLS and verifying client
certificates, with the services' users and permissions: a service configured with the CA and
its certificate (ORDERLINE_NATS_TLS_*) connects as its own user, declares the streams and
publishes its events; a plaintext client and a TLS client without a certificate are refused."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from orderline_devtools.certificates import Authority, issue, make_ca
from orderline_devtools.local import NatsServer
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.permissions import write_nats_config
from orderline_runtime.settings import ServiceSettings


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def tls_nats(tmp_path: Path, ca: Authority) -> Iterator[NatsServer]:
    auth = tmp_path / "auth"
    write_nats_config(auth)
    server_tls = issue(ca, tmp_path / "nats", "nats")
    config = tmp_path / "nats.conf"
    config.write_text(
        f"""
include "auth/nats-auth.conf"  # relative to this file, as nats-server reads includes
tls {{
  cert_file: "{server_tls.cert_file}"
  key_file: "{server_tls.key_file}"
  ca_file: "{ca.cert_file}"
  verify: true
}}
"""
    )
    server = NatsServer(tmp_path / "jetstream", config_file=config).start()
    yield server
    server.stop()


async def test_a_service_connects_over_tls_as_its_own_user(
    tls_nats: NatsServer, ca: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = issue(ca, tmp_path / "intake", "intake")
    for name, value in {
        "ORDERLINE_NATS_TLS_CA_FILE": ca.cert_file,
        "ORDERLINE_NATS_TLS_CERT_FILE": client.cert_file,
        "ORDERLINE_NATS_TLS_KEY_FILE": client.key_file,
        "ORDERLINE_NATS_PASSWORD_FILE": tmp_path / "auth" / "intake.password",
    }.items():
        monkeypatch.setenv(name, str(value))
    settings = ServiceSettings(service_name="intake")
    user, password = settings.nats_user_password()
    assert user == "intake"
    bus = EventBus(
        tls_nats.url.replace("127.0.0.1", "localhost"),
        name="intake",
        user=user,
        password=password,
        tls=settings.nats_tls(),
    )
    await bus.connect()
    try:
        ack = await bus.js.publish("orderline.order.created", b"{}")
        assert ack.stream == "ORDER"
    finally:
        await bus.drain()


async def test_plaintext_and_certificate_less_clients_are_refused(
    tls_nats: NatsServer, ca: Authority, tmp_path: Path
) -> None:
    password = (tmp_path / "auth" / "intake.password").read_text().strip()
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(
            tls_nats.url, user="intake", password=password, allow_reconnect=False, connect_timeout=2
        )
    anonymous = ssl.create_default_context(cafile=str(ca.cert_file))
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(
            tls_nats.url.replace("127.0.0.1", "localhost"),
            user="intake",
            password=password,
            tls=anonymous,
            allow_reconnect=False,
            connect_timeout=2,
        )


def test_half_a_client_certificate_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORDERLINE_NATS_TLS_CERT_FILE", str(tmp_path / "c.crt"))
    with pytest.raises(ValueError, match="go together"):
        ServiceSettings()
