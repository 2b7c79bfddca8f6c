"""Device fleet settings, from ``ORDERLINE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from orderline_simulators.common.config import SimulatorSettings
from orderline_simulators.fleet.domain import FaultSpec, device_id_for, parse_fault_specs

MAX_DEVICES = 9999


class FleetSettings(SimulatorSettings):
    fleet_host: str = "127.0.0.1"
    fleet_port: int = Field(default=50061, ge=0, le=65535)
    fleet_devices: int = Field(default=100, ge=1, le=MAX_DEVICES)
    # e.g. "CPE-0007:thermal,CPE-0013:line"
    fleet_faults: Annotated[tuple[FaultSpec, ...], NoDecode] = ()
    # Simulated time a config change takes on the device (0: immediate).
    fleet_apply_delay_ms: int = Field(default=0, ge=0, le=60_000)
    # Seed for reproducible telemetry jitter (unset: random).
    fleet_seed: int | None = None
    # Where each device's state is kept across restarts (fleet/state.py); unset: in memory
    # only, every device back at its factory configuration after a restart.
    fleet_state_dir: Path | None = None
    # Where telemetry is streamed; empty disables streaming.
    telemetry_target: str = "127.0.0.1:50053"
    telemetry_interval_seconds: float = Field(default=1.0, gt=0, le=3600, allow_inf_nan=False)
    service_token: str = "dev-service"

    @field_validator("fleet_host", mode="after")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("telemetry_target", "service_token", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("fleet_faults", mode="before")
    @classmethod
    def _faults(cls, value: Any, info: ValidationInfo) -> tuple[FaultSpec, ...]:
        specs = parse_fault_specs(value) if isinstance(value, str) else tuple(value)
        devices = info.data.get("fleet_devices")
        if devices is not None:
            fleet = {device_id_for(i) for i in range(1, devices + 1)}
            for spec in specs:
                if spec.device_id not in fleet:
                    raise ValueError(
                        f"{spec.device_id} is not in the fleet (CPE-0001..{device_id_for(devices)})"
                    )
        return specs
