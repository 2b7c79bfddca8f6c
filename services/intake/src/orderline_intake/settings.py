"""Intake's settings."""

from __future__ import annotations

from pathlib import Path

from orderline_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    default_grpc_port = 50051

    # The business catalogue; the packaged one when unset.
    catalogue_file: Path | None = None
