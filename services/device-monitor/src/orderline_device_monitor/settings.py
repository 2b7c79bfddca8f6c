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

    # Several replicas of device-monitor on one database: one evaluates the fleet and answers,
    # the others stand by (NOT_SERVING) and take over when it dies. They agree through a lease
    # in NATS (app/leadership.py) that expires this long after its holder's last renewal: the
    # longest a dead replica's fleet goes unevaluated. 0: no lease, this process alone owns the
    # fleet (one replica only). Env ORDERLINE_LEADER_LEASE_SECONDS.
    leader_lease_seconds: float = Field(default=6.0, ge=0)

    # This replica's name on the lease; empty: host name and process id (in Kubernetes the pod's
    # name, so a restarted container takes its own lease back at once). Env ORDERLINE_REPLICA_ID.
    replica_id: str = ""

    # Where the other replicas reach this one ("host:port"), written beside its name on the
    # lease so that a standby forwards calls to the leader; empty: the listening host (this
    # machine's name when listening on every interface) and port. The chart sets the pod's IP.
    # Env ORDERLINE_REPLICA_ADDRESS.
    replica_address: str = ""
