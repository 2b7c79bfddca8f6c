"""The archive's settings: only what every service reads (docs/configuration.md)."""

from __future__ import annotations

from orderline_runtime.settings import ServiceSettings


class ArchiveSettings(ServiceSettings):
    default_grpc_port = 50054
