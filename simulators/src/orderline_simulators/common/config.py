"""Settings base: read once from ``ORDERLINE_*`` variables, fail fast naming the bad variable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from orderline_runtime.rpc.tls import TlsConfig, tls_from_settings
from orderline_runtime.settings import IdentitySettings
from orderline_simulators.common.logs import LOG_LEVELS

ENV_PREFIX = "ORDERLINE_"


class SimulatorSettings(IdentitySettings):
    """Settings every simulator shares. The identity settings (ORDERLINE_AUTH_*,
    ORDERLINE_ALLOW_DEVELOPMENT_TOKENS) are the services' own: a simulator verifies its callers'
    tokens as they do (common/auth.py)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")

    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300, allow_inf_nan=False)
    # Mutual TLS, as the services (docs/security.md#grpc-mutual-tls): the simulator serves
    # TLS only, and its own calls (the fleet's telemetry stream) present the certificate.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_auth: bool = Field(default=True, validate_default=True)

    @field_validator("tls_require_client_auth")
    @classmethod
    def _tls_complete(cls, require: bool, info: ValidationInfo) -> bool:
        data = info.data
        tls_from_settings(
            data.get("tls_cert_file"), data.get("tls_key_file"), data.get("tls_ca_file"), require
        )
        return require

    def tls_config(self) -> TlsConfig | None:
        return tls_from_settings(
            self.tls_cert_file, self.tls_key_file, self.tls_ca_file, self.tls_require_client_auth
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        text = str(value).strip().upper()
        if text not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return text


S = TypeVar("S", bound=SimulatorSettings)


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad variable: ``ORDERLINE_X: reason (got 'value')``."""
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = ENV_PREFIX + str(loc[0]).upper() if loc else "settings"
        message = str(error.get("msg", "invalid"))
        lines.append(f"{name}: {message} (got {error.get('input')!r})")
    return lines


def load_settings(cls: type[S], *, program: str) -> S:
    """Reads the settings or exits with status 2 and a message naming each bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        print(f"{program}: invalid configuration", file=sys.stderr)
        for line in describe_errors(exc):
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2) from None
