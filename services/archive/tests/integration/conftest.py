"""Fixtures of the archive's integration tests (archive_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from archive_harness import archive, producer, stub

__all__ = ["archive", "producer", "stub"]
