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

    # Several replicas of device-monitor on one database split the fleet into partitions, each
    # a lease in NATS (app/ownership.py) that expires this long after its holder's last renewal:
    # the longest a dead replica's devices go unevaluated. 0: no leases, this process alone
    # evaluates the fleet (one replica only). Env ORDERLINE_LEADER_LEASE_SECONDS (the name of
    # the single leader lease it was; kept so that deployments need no change).
    leader_lease_seconds: float = Field(default=6.0, ge=0)

    # How many partitions the fleet is cut into (a stable hash of each device's access node,
    # else its id, app/partitions.py); each live replica evaluates about partitions / replicas
    # of them. Every replica on one database must use the same number. More replicas than
    # partitions leave some with none. Env ORDERLINE_DEVICE_PARTITIONS.
    device_partitions: int = Field(default=16, ge=1, le=1024)

    # This replica's name on the leases; empty: host name and process id (in Kubernetes the
    # pod's name, so a restarted container takes its own leases back at once).
    # Env ORDERLINE_REPLICA_ID.
    replica_id: str = ""

    # Where the other replicas reach this one ("host:port"), written beside its name on each
    # lease so that they route calls about its devices here; empty: the listening host (this
    # machine's name when listening on every interface) and port. The chart sets the pod's IP.
    # Env ORDERLINE_REPLICA_ADDRESS.
    replica_address: str = ""
