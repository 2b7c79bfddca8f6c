"""Reporting's settings: what every service reads, and how many projection checkpoints it
keeps (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field

from orderline_runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    default_grpc_port = 50055
    # Projection checkpoints kept besides the last of each hour of event time
    # (app/checkpoints.py): the most recent ones, which a rebuild compares first.
    reporting_checkpoints_kept: int = Field(default=1000, ge=1)
