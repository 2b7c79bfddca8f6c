"""Reading the span files services write locally, and gathering one order's traces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderline_runtime.telemetry_names import ORDER_ID


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def load_spans(trace_dir: Path) -> list[Span]:
    spans = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line being written right now
                spans.append(
                    Span(
                        trace_id=raw["trace_id"],
                        span_id=raw["span_id"],
                        parent_span_id=raw.get("parent_span_id"),
                        name=raw["name"],
                        service=raw.get("service") or "?",
                        start_ns=int(raw["start_ns"]),
                        end_ns=int(raw["end_ns"]),
                        status=raw.get("status", "UNSET"),
                        attributes=raw.get("attributes") or {},
                    )
                )
    return spans


# A gRPC method that only reads: Get…, List…, Watch….
_READ_RPC = re.compile(r"^/[\w.]+/(Get|List|Watch)[A-Z]\w*$")


def order_traces(spans: Iterable[Span], order_id: str) -> dict[str, list[Span]]:
    """Every trace that changed the order, whole (spans without the attribute included).

    A trace that starts with a read (someone, often a CLI, polling the order) is left out: it
    changes nothing and would bury the order's own traces."""
    spans = list(spans)
    trace_ids = {s.trace_id for s in spans if s.attributes.get(ORDER_ID) == order_id}
    by_trace: dict[str, list[Span]] = {t: [] for t in trace_ids}
    for s in spans:
        if s.trace_id in by_trace:
            by_trace[s.trace_id].append(s)
    for t in by_trace.values():
        t.sort(key=lambda s: s.start_ns)
    return {t: found for t, found in by_trace.items() if not _starts_with_a_read(found)}


def _starts_with_a_read(spans: list[Span]) -> bool:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    return bool(roots) and all(_READ_RPC.match(s.name) for s in roots)


def tree_order(spans: list[Span]) -> list[tuple[int, Span]]:
    """Depth-first order with depth, roots (and orphans) first by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids else None
        children.setdefault(parent, []).append(s)
    out: list[tuple[int, Span]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_ns):
            out.append((depth, s))
            walk(s.span_id, depth + 1)

    walk(None, 0)
    return out
