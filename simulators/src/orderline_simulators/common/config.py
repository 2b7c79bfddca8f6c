"""Settings base: read once from ``ORDERLINE_*`` variables, fail fast naming the bad variable."""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderline_simulators.common.logs import LOG_LEVELS

ENV_PREFIX = "ORDERLINE_"


class SimulatorSettings(BaseSettings):
    """Settings every simulator shares."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")

    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300, allow_inf_nan=False)

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
