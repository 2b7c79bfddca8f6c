"""Fixtures of reporting's integration tests (reporting_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from reporting_harness import producer

__all__ = ["producer"]
