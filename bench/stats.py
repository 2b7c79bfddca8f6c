"""Percentiles and spreads."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation between the closest ranks
    (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median, as a share: how far apart repeated runs are."""
    finite = [v for v in values if not math.isnan(v)]
    if len(finite) < 2:
        return math.nan
    mid = median(finite)
    return (max(finite) - min(finite)) / mid if mid else math.nan
