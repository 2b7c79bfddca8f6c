"""Optional mutual TLS for gRPC between the services (docs/security.md#service-identity).

One certificate per process (its key, its chain) and the CA that signs its peers': the server
presents the certificate and, with `require_client_auth`, accepts only clients presenting one
signed by the CA; outgoing channels present the same certificate and check the server's
against the CA (and the address's host name against the certificate's names). Without a
certificate everything stays plaintext, as in development.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    # The CA whose signature a peer's certificate must carry; None: the system's roots for
    # servers, and no client certificates asked for.
    ca_file: Path | None = None
    require_client_auth: bool = True

    def __post_init__(self) -> None:
        if self.require_client_auth and self.ca_file is None:
            raise ValueError("requiring client certificates needs the CA that signs them")

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        ca = self.ca_file.read_bytes() if self.ca_file is not None else None
        return self.cert_file.read_bytes(), self.key_file.read_bytes(), ca

    def server_credentials(self) -> grpc.ServerCredentials:
        cert, key, ca = self._read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=self.require_client_auth
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        cert, key, ca = self._read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def tls_from_settings(
    cert_file: Path | None, key_file: Path | None, ca_file: Path | None, require_client_auth: bool
) -> TlsConfig | None:
    """The TlsConfig the ORDERLINE_TLS_* settings describe (None: unset, plaintext); half a
    configuration, which would serve plaintext where TLS was meant, is a ValueError saying
    what is missing."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("ORDERLINE_TLS_CERT_FILE and ORDERLINE_TLS_KEY_FILE go together")
    if cert_file is None or key_file is None:
        if ca_file is not None:
            raise ValueError("ORDERLINE_TLS_CA_FILE needs ORDERLINE_TLS_CERT_FILE and _KEY_FILE")
        return None
    if require_client_auth and ca_file is None:
        raise ValueError(
            "client certificates are required (the default with TLS): set "
            "ORDERLINE_TLS_CA_FILE to the CA that signs them, or this to false on purpose"
        )
    return TlsConfig(cert_file, key_file, ca_file, require_client_auth=require_client_auth)


# The process's own identity for its outgoing channels, set once at start by the service (or
# a simulator) from its settings: every channel it opens presents it, wherever it is opened.
_client_tls: TlsConfig | None = None


def set_client_tls(config: TlsConfig | None) -> None:
    global _client_tls
    _client_tls = config


def client_tls() -> TlsConfig | None:
    return _client_tls
