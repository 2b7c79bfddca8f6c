"""Typed settings read once from the environment, failing fast with a clear message."""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderline_runtime.rpc.auth import JwtConfig
from orderline_runtime.rpc.tls import TlsConfig, tls_from_settings

DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class IdentitySettings(BaseSettings):
    """How callers' bearer tokens are verified (ORDERLINE_AUTH_*, the development opt-in) and
    the token this process presents: every service reads them, and so do the simulators, which
    verify their callers the same way (simulators/README.md)."""

    model_config = SettingsConfigDict(env_prefix="ORDERLINE_", extra="ignore")

    auth_tokens_file: Path | None = None
    # Accept the well-known development tokens when no tokens file is set. Off by default: a
    # service with neither refuses to start; only `orderline up` and the tests turn it on.
    allow_development_tokens: bool = False
    # The token presented to other services; unset means `dev-service` when development tokens
    # are in use, and otherwise a service that calls peers refuses to start.
    service_token: str | None = None
    # JWT bearer tokens from an identity provider, beside or instead of the tokens file: keys
    # from a JWKS file or URL, and the issuer and audience every token must name.
    auth_jwks_file: Path | None = None
    auth_jwks_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    auth_issuer: str | None = None
    auth_audience: str | None = None
    # Where a token's roles are: a claim name, or a dotted path into nested claims.
    auth_roles_claim: str = Field(default="roles", min_length=1)
    auth_leeway_seconds: float = Field(default=30.0, ge=0)
    # The longest a call waits for the JWKS URL to answer; past it the call is UNAVAILABLE.
    auth_jwks_timeout_seconds: float = Field(default=2.0, gt=0)
    auth_jwks_refresh_seconds: float = Field(default=300.0, gt=0)
    # An unknown key id triggers a fetch at most this often.
    auth_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)

    def jwt_config(self) -> JwtConfig | None:
        """None when no JWKS is set: JWT bearer tokens are off."""
        if self.auth_jwks_file is None and not self.auth_jwks_url:
            return None
        return JwtConfig(
            jwks_file=self.auth_jwks_file,
            jwks_url=self.auth_jwks_url or None,
            issuer=self.auth_issuer or None,
            audience=self.auth_audience or None,
            roles_claim=self.auth_roles_claim,
            leeway_seconds=self.auth_leeway_seconds,
            fetch_timeout_seconds=self.auth_jwks_timeout_seconds,
            refresh_seconds=self.auth_jwks_refresh_seconds,
            min_refresh_seconds=self.auth_jwks_min_refresh_seconds,
        )


class ServiceSettings(IdentitySettings):
    """What every service reads; a service subclasses it to add its own fields."""

    model_config = SettingsConfigDict(env_prefix="ORDERLINE_", extra="ignore", frozen=True)

    # Set by a service whose own calls need a token (ORDERLINE_SERVICE_TOKEN), so it can refuse
    # to start without one rather than fail its first call.
    calls_other_services: ClassVar[bool] = False
    # Where the service listens when ORDERLINE_GRPC_PORT is unset; each service names its own
    # (0: any free port).
    default_grpc_port: ClassVar[int] = 0

    service_name: str = Field(default="", description="set by the service, not the environment")
    grpc_host: str = "127.0.0.1"
    # None: the service's default port; 0: any free port.
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    database_url: str = ""
    # How long a write waits for SQLite's write lock (or a pooled PostgreSQL connection) before
    # it fails as UNAVAILABLE, and the service reports NOT_SERVING until a write can start.
    database_lock_timeout_seconds: float = Field(default=5.0, gt=0)
    nats_url: str = "nats://127.0.0.1:4222"
    nats_credentials_file: Path | None = None
    # The service's own NATS user (docs/security.md#service-identity): its password in a file
    # (a Secret), the user named as the service unless set.
    nats_user: str = ""
    nats_password_file: Path | None = None
    # TLS to NATS: the CA that signs the server's certificate (system roots when unset), and a
    # client certificate and key when the server verifies clients. Any of them turns TLS on.
    nats_tls_ca_file: Path | None = None
    nats_tls_cert_file: Path | None = None
    nats_tls_key_file: Path | None = Field(default=None, validate_default=True)
    # Mutual TLS for gRPC (docs/security.md#service-identity): this process's certificate and
    # key (served, and presented on its own calls) and the CA that signs its peers'. Unset:
    # plaintext. Client certificates are required unless turned off on purpose.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_auth: bool = Field(default=True, validate_default=True)
    # A plaintext port answering grpc.health.v1 only, for probes that cannot speak TLS (the
    # kubelet's); unset: none (health is on the gRPC port, as always).
    health_port: int | None = Field(default=None, ge=0, le=65535)
    trace_dir: Path = Path("var/traces")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    migrate_on_start: bool = True
    # Prometheus metrics on this port (0: off).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    max_concurrent_rpcs: int = Field(default=256, ge=1)
    # Commands under admission (CreateOrder) are refused with RESOURCE_EXHAUSTED while the
    # event loop has been busier than this share of the last second or so (loop_load.py);
    # 1.0 turns it off.
    shed_loop_busy: float = Field(default=0.98, gt=0, le=1)
    # Input limits at the edge (docs/security.md): a request's encoded size, every string in it
    # (characters), and one principal's writes (per second, with bursts; 0 turns the rate off;
    # principals with the service role are exempt and bounded by admission control instead).
    max_message_bytes: int = Field(default=1024 * 1024, ge=4096)
    max_text_chars: int = Field(default=2000, ge=64)
    write_rate_per_principal: float = Field(default=20.0, ge=0)
    write_burst_per_principal: int = Field(default=100, ge=1)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Outgoing gRPC calls never wait forever.
    call_timeout_seconds: float = Field(default=5.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        # The two async drivers the services ship; anything else would fail later, deep in
        # SQLAlchemy, as a traceback.
        if url and not url.startswith(DATABASE_SCHEMES):
            raise ValueError(
                "use sqlite+aiosqlite:///<file> or postgresql+asyncpg://<user>@<host>/<db>"
            )
        return url

    @field_validator("tls_require_client_auth")
    @classmethod
    def _tls_complete(cls, require: bool, info: ValidationInfo) -> bool:
        # Half a TLS configuration is refused at start. Checked here, on the last TLS field
        # (the others are validated before it), so the error names settings and never echoes
        # the whole environment.
        data = info.data
        tls_from_settings(
            data.get("tls_cert_file"), data.get("tls_key_file"), data.get("tls_ca_file"), require
        )
        return require

    def tls_config(self) -> TlsConfig | None:
        """None when no certificate is set: gRPC stays plaintext."""
        return tls_from_settings(
            self.tls_cert_file, self.tls_key_file, self.tls_ca_file, self.tls_require_client_auth
        )

    @field_validator("nats_tls_key_file")
    @classmethod
    def _nats_tls_pair(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if (info.data.get("nats_tls_cert_file") is None) != (key is None):
            raise ValueError("ORDERLINE_NATS_TLS_CERT_FILE and _KEY_FILE go together")
        return key

    def nats_tls(self) -> ssl.SSLContext | None:
        """The TLS context of the NATS connection; None: plaintext (unless the URL says tls://)."""
        if self.nats_tls_ca_file is None and self.nats_tls_cert_file is None:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(self.nats_tls_ca_file) if self.nats_tls_ca_file else None,
        )
        if self.nats_tls_cert_file is not None and self.nats_tls_key_file is not None:
            context.load_cert_chain(self.nats_tls_cert_file, self.nats_tls_key_file)
        return context

    def nats_user_password(self) -> tuple[str | None, str | None]:
        """The NATS user and password, or (None, None) when no password file is set."""
        if self.nats_password_file is None:
            return None, None
        password = self.nats_password_file.read_text().strip()
        return self.nats_user or self.service_name, password

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///var/{self.service_name}.db"

    def resolved_grpc_port(self) -> int:
        if self.grpc_port is not None:
            return self.grpc_port
        return self.default_grpc_port


S = TypeVar("S", bound=ServiceSettings)


def env_name(field: str) -> str:
    return "ORDERLINE_" + field.upper()


def unreadable_files(settings: BaseSettings) -> list[tuple[str, str]]:
    """Every `*_file` setting that names a file the process cannot read, with why: found at
    start, not as a traceback from whichever component opens it first. The simulators check
    their identity settings with it too, so a bad file reads the same from every process."""
    problems = []
    for field in type(settings).model_fields:
        path = getattr(settings, field)
        if not field.endswith("_file") or not isinstance(path, Path):
            continue
        if not path.exists():
            problems.append((field, f"no such file: {path}"))
        elif not path.is_file():
            problems.append((field, f"not a file: {path}"))
        elif not os.access(path, os.R_OK):
            problems.append((field, f"not readable by this process: {path}"))
    return problems


def load_settings(cls: type[S], service_name: str) -> S:
    """Reads settings from the environment. On a bad value it prints one line per bad variable,
    naming it and the problem, and exits 2: never a traceback."""
    try:
        settings = cls(service_name=service_name)
    except ValidationError as exc:
        problems = [
            (
                "_".join(str(p) for p in err["loc"]),
                f"{err['msg']} (got {err.get('input')!r})",
            )
            for err in exc.errors()
        ]
    else:
        problems = unreadable_files(settings)
        if not problems:
            return settings
    for field, problem in problems:
        print(
            f"{service_name}: invalid configuration: {env_name(field)}: {problem}",
            file=sys.stderr,
        )
    raise SystemExit(2)
