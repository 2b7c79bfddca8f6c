"""Tables: one run per database, and base against head."""

from __future__ import annotations

import math
from typing import Any

from bench.stats import median, spread


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "not counted"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, int) or abs(value) >= 100 or float(value).is_integer():
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def by_database(results: dict[str, dict[str, Any]]) -> str:
    """metric | SQLite | PostgreSQL ... from {database: run result}."""
    names: list[str] = []
    for r in results.values():
        names += [n for n in r["metrics"] if n not in names]
    rows = []
    for n in names:
        row = [n]
        for r in results.values():
            m = r["metrics"].get(n)
            row.append(fmt(m["value"], m["unit"]) if m else "—")
        rows.append(row)
    return markdown(["metric", *results], rows)


def ratio(base: float | None, head: float | None) -> float:
    if base is None or head is None or not base or math.isnan(base) or math.isnan(head):
        return math.nan
    return head / base


def compare(base_runs: list[dict[str, Any]], head_runs: list[dict[str, Any]]) -> str:
    """metric | base | head | head/base | spread base | spread head; base and head are the
    medians of their runs, spread is (max - min) / median over the runs."""
    names: list[str] = []
    for r in base_runs + head_runs:
        names += [n for n in r["metrics"] if n not in names]
    rows = []
    for n in names:
        b = [r["metrics"][n]["value"] for r in base_runs if n in r["metrics"]]
        h = [r["metrics"][n]["value"] for r in head_runs if n in r["metrics"]]
        unit = next(r["metrics"][n]["unit"] for r in base_runs + head_runs if n in r["metrics"])
        bm = median([v for v in b if v is not None]) if any(v is not None for v in b) else None
        hm = median([v for v in h if v is not None]) if any(v is not None for v in h) else None
        rows.append(
            [
                n,
                fmt(bm, unit),
                fmt(hm, unit),
                fmt(ratio(bm, hm)),
                _pct(spread([v for v in b if v is not None])),
                _pct(spread([v for v in h if v is not None])),
            ]
        )
    return markdown(["metric", "base", "head", "head/base", "spread base", "spread head"], rows)


def _pct(share: float) -> str:
    return "—" if math.isnan(share) else f"±{share * 50:.0f}%"
