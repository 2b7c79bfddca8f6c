"""What a serving pod loads: the migration machinery (Alembic) only when it migrates, so the
idle memory the chart sizes pods by stays low (docs/performance.md: idle RSS)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BOOTSTRAPS = [
    "orderline_intake.bootstrap",
    "orderline_provisioning.bootstrap",
    "orderline_device_monitor.bootstrap",
    "orderline_archive.bootstrap",
    "orderline_reporting.bootstrap",
]


@pytest.mark.parametrize("module", BOOTSTRAPS)
def test_building_a_service_does_not_load_the_migration_machinery(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] == "alembic"], module
