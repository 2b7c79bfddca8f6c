"""device-monitor's settings (environment variables with the ORDERLINE_ prefix)."""

from __future__ import annotations

from pydantic import Field

from orderline_runtime.settings import ServiceSettings


class DeviceMonitorSettings(ServiceSettings):
    default_grpc_port = 50053

    # When set, every device model's heartbeat interval: a device without an open alarm is
    # UNKNOWN (communication lost, not fit) once its last sample is older than this. Unset,
    # each model's `heartbeat_interval_s` from the rules file applies (the default model: 10).
    # Env ORDERLINE_TELEMETRY_STALE_SECONDS.
    telemetry_stale_seconds: float = Field(default=10.0, gt=0)

    # The device agents' endpoint ("host:port", DeviceAgentService: the fleet simulator or the
    # CPE management) that first-line troubleshooting asks for a remote reboot. Empty: no
    # remote reboot (each is recorded as tried with outcome UNAVAILABLE; the device is escalated
    # when its recovery window has passed). Env ORDERLINE_DEVICE_AGENT_ADDRESS.
    device_agent_address: str = ""
