"""device-monitor's settings (environment variables with the ORDERLINE_ prefix)."""

from __future__ import annotations

from pydantic import Field

from orderline_runtime.settings import ServiceSettings


class DeviceMonitorSettings(ServiceSettings):
    default_grpc_port = 50053

    # A device without an open alarm is UNKNOWN (not fit) when its last sample is older than
    # this. Env ORDERLINE_TELEMETRY_STALE_SECONDS.
    telemetry_stale_seconds: float = Field(default=10.0, gt=0)
