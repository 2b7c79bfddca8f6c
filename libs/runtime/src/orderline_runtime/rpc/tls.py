"""Optional mutual TLS for gRPC between the services (docs/security.md#service-identity).

One certificate per process (its key, its chain) and the CA that signs its peers': the server
presents the certificate and, with `require_client_auth`, accepts only clients presenting one
signed by the CA; outgoing channels present the same certificate and check the server's
against the CA (and the address's host name against the certificate's names). Without a
certificate everything stays plaintext, as in development.

The files are followed, not read once: cert-manager renews a certificate (and a CA rotation
changes the bundle) by replacing the mounted Secret's files in place. `CertificateFiles` looks
at the files' stat per use (a server's TLS handshake, a client's call) and re-reads them only
when that changed; a replacement that is not usable yet (a file half-written or unreadable, a
key that does not match the certificate) keeps the previous material, with one warning per
change naming the file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import grpc

from orderline_runtime.logs import get_logger

log = get_logger(__name__)

# A file's identity and version as stat sees it through symlinks (Kubernetes swaps a `..data`
# symlink: the inode changes; a plain overwrite changes the size or the modification time);
# None when it cannot be stat'ed.
_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path | None) -> _Stamp:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class UnusableFiles(ValueError):
    """The certificate files cannot be used as they are; `file` is the one at fault."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class Material:
    """The PEM bytes of one usable state of the files; `version` counts the changes taken."""

    cert: bytes
    key: bytes
    ca: bytes | None
    version: int


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableFiles(path, f"cannot be read ({exc.strerror or exc})") from None


def load_material(
    cert_file: Path, key_file: Path, ca_file: Path | None, version: int = 0
) -> Material:
    """The three files read and checked: the certificate chain and the CA bundle parse, the key
    parses and is the certificate's. UnusableFiles names the file that is not."""
    # cryptography comes with PyJWT[crypto]; imported here, where TLS is in use.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert, key = _read(cert_file), _read(key_file)
    ca = _read(ca_file) if ca_file is not None else None
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        raise UnusableFiles(cert_file, "is not a PEM certificate chain") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise UnusableFiles(key_file, "is not an unencrypted PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != private.public_key().public_bytes(*spki):
        raise UnusableFiles(key_file, f"does not match the certificate in {cert_file}")
    if ca is not None and ca_file is not None:
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise UnusableFiles(ca_file, "is not a PEM certificate bundle") from None
    return Material(cert, key, ca, version)


class CertificateFiles:
    """A TlsConfig's files as they are now. `current()` costs a stat of each file when nothing
    changed; it is safe from any thread (gRPC calls a server's fetcher from its own)."""

    def __init__(self, cert_file: Path, key_file: Path, ca_file: Path | None) -> None:
        self._paths = (cert_file, key_file, ca_file)
        self._lock = threading.Lock()
        self._seen = self._stamps()
        # At start the files must be usable: UnusableFiles (a ValueError) otherwise.
        self._material = load_material(cert_file, key_file, ca_file)

    def _stamps(self) -> tuple[_Stamp, ...]:
        return tuple(_stamp(path) for path in self._paths)

    def current(self) -> Material:
        stamps = self._stamps()
        if stamps == self._seen:
            return self._material
        with self._lock:
            if stamps == self._seen:
                return self._material
            self._seen = stamps
            previous = self._material
            try:
                self._material = load_material(*self._paths, version=previous.version + 1)
            except UnusableFiles as exc:
                # Once per change: the next look sees the same stamps and returns at once.
                log.warning(
                    "tls files changed but are not usable; keeping the previous certificate",
                    file=str(exc.file),
                    reason=exc.reason,
                )
                return previous
            log.info("tls certificate reloaded", cert_file=str(self._paths[0]))
            return self._material


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

    @cached_property
    def files(self) -> CertificateFiles:
        """The files followed (one per config, read on first use; not part of its equality)."""
        return CertificateFiles(self.cert_file, self.key_file, self.ca_file)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that take the files as they are at each new connection's handshake:
        a renewed certificate or CA bundle is served from the next connection on (those
        already open keep theirs); an unusable replacement keeps the previous one."""
        files = self.files
        first = files.current()
        served = [first.version]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC before every TLS handshake, on its own thread: None is "no change".
            try:
                material = files.current()
                if material.version == served[0]:
                    return None
                served[0] = material.version
                return _server_configuration(material)
            except Exception:  # never let a reload take the server's handshakes down
                log.exception("tls certificate reload failed; keeping the previous certificate")
                return None

        return grpc.dynamic_ssl_server_credentials(
            _server_configuration(first),
            fetch,
            require_client_authentication=self.require_client_auth,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials from the files as they are now (a channel keeps them for its life:
        `orderline_runtime.rpc.client.open_channel` reopens a channel when they change)."""
        return material_channel_credentials(self.files.current())


def _server_configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca
    )


def material_channel_credentials(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
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
