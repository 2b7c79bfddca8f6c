"""Intake's settings."""

from __future__ import annotations

from pathlib import Path

from orderline_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    default_grpc_port = 50051

    # The business catalogue; the one packaged in orderline_catalogue (which provisioning and
    # reporting read) when unset. Another file is for trying a catalogue change on intake alone.
    catalogue_file: Path | None = None
