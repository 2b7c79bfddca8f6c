"""Notification gateway settings, from ``ORDERLINE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator

from orderline_simulators.common.config import SimulatorSettings
from orderline_simulators.gateway.domain import MAX_DELAY_MS


class GatewaySettings(SimulatorSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=50062, ge=0, le=65535)
    # Share of sends that fail with UNAVAILABLE, 0..1.
    gateway_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    # Delay before every send is answered, ms.
    gateway_delay_ms: int = Field(default=0, ge=0, le=MAX_DELAY_MS)
    # Share of accepted messages whose delivery report is FAILED, 0..1.
    gateway_delivery_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    # How long after acceptance the delivery report (DELIVERED / FAILED) comes, ms.
    gateway_report_delay_ms: int = Field(default=200, ge=0, le=MAX_DELAY_MS)
    # Seed for reproducible failure injection (unset: random).
    gateway_seed: int | None = None

    @field_validator("gateway_host", mode="after")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value
