"""The chart tests share _chart_support.py (scenarios, rendering, lookups)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
