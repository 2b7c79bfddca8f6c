"""Provisioning's settings: the common ones plus its peers, its job worker and the key that
signs activation vouchers."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orderline_runtime.settings import ServiceSettings


class ProvisioningSettings(ServiceSettings):
    default_grpc_port = 50052

    # It calls intake, device-monitor, the device agents and the gateway with its token.
    calls_other_services = True

    # Peers (docs/configuration.md).
    intake_address: str = "127.0.0.1:50051"
    device_monitor_address: str = "127.0.0.1:50053"
    device_agent_address: str = "127.0.0.1:50061"
    gateway_address: str = "127.0.0.1:50062"
    # How long prechecks retry a device without telemetry or an unreachable device-monitor
    # before the job is held (NO_TELEMETRY / DEVICE_MONITOR_UNAVAILABLE).
    prechecks_wait_seconds: float = Field(default=60.0, gt=0)
    # Backoff of transient failures: initial delay, doubling up to the maximum.
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    # SMS sends the gateway may fail before voice is tried.
    sms_failures_before_voice: int = Field(default=5, ge=0)
    # Failed notify attempts (sends refused, messages undelivered) before the job goes to the
    # clerk as CUSTOMER_NOT_REACHED (the fallout queue); never retried forever.
    notify_max_attempts: int = Field(default=10, ge=1, le=1000)
    # How long one message's delivery report is awaited (GetDelivery polled) before the
    # message counts as undelivered.
    notify_delivery_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Job worker: steps run at once, idle poll, and the lease a running step holds on its job.
    worker_concurrency: int = Field(default=16, ge=1, le=64)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    job_lease_seconds: float = Field(default=30.0, ge=1)
    # The principal automated jobs run under: the checklist checks its certification for the
    # job's business type (domain/certification.py).
    provisioning_operator: str = Field(
        default="provisioning", pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:/+-]{0,63}$"
    )
    # Certifications granted at start where none was ever recorded (a revoked one stays
    # revoked): `principal:type|type` or `principal:*`, comma-separated. Unset: nobody is
    # certified until a manager grants it, except in development (development tokens
    # allowed: the local stack, the bench, tests), where the operator and `engineer-dev` are
    # certified for every type, so that the demo flows without skipping the check.
    provisioning_seed_certifications: str | None = None

    # The Ed25519 private key (PEM PKCS#8, or 32 raw bytes) that signs activation vouchers.
    # Required: without it the service does not start, as it never issues an unsigned voucher
    # (docs/configuration.md says why it refuses rather than failing jobs).
    provisioning_voucher_key_file: Path | None = None
    # Public keys (a PEM bundle) of earlier voucher keys: after a rotation the vouchers they
    # signed still verify. The current key's own public key is always trusted.
    provisioning_voucher_public_keys_file: Path | None = None

    def certification_seed(self) -> str:
        """What to seed at start (see provisioning_seed_certifications)."""
        if self.provisioning_seed_certifications is not None:
            return self.provisioning_seed_certifications
        if self.allow_development_tokens:
            return f"{self.provisioning_operator}:*,engineer-dev:*"
        return ""
