"""What one order costs in units that can be counted: transactions, events, RPCs, spans.

- events: JetStream's last sequence of every stream (each published event takes one);
- transactions: PostgreSQL's `pg_stat_database.xact_commit` of each service's database (every
  committed transaction, read-only ones included; the statistics reach the view within about
  a second, so both readings lag alike); SQLite's write-transaction counter from the
  wal-index (commits that wrote something; read-only transactions are not counted: SQLite
  records them nowhere);
- spans and RPCs: the JSON-lines span files, spans started in the window; RPCs are SERVER
  spans (each gRPC call served, by any process, the harness's own CreateOrder calls included).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats

from bench import sqlite_wal


async def stream_sequences(nats_url: str) -> dict[str, int]:
    nc = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        infos = await nc.jetstream().streams_info()
        return {i.config.name or "?": int(i.state.last_seq) for i in infos}
    finally:
        await nc.close()


async def pg_commits(admin_dsn: str, databases: dict[str, str]) -> dict[str, int]:
    """xact_commit by service, from the database names `databases` maps services to."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1::text[])",
            list(databases.values()),
        )
    finally:
        await conn.close()
    by_name = {r["datname"]: int(r["xact_commit"]) for r in rows}
    return {svc: by_name.get(name, 0) for svc, name in databases.items()}


def sqlite_commits(db_dir: Path, services: tuple[str, ...]) -> dict[str, int | None]:
    return {svc: sqlite_wal.write_transactions(db_dir / f"{svc}.db") for svc in services}


@dataclass
class SpanCounts:
    spans: Counter[str]  # by service
    rpcs: Counter[str]  # gRPC calls by "service method"
    kinds: Counter[str]  # spans by kind


def count_spans(trace_dir: Path, start_ns: int, end_ns: int) -> SpanCounts:
    """Spans started in [start_ns, end_ns). An RPC is a SERVER span, or a CLIENT span that no
    SERVER span has as parent: a call to a process that writes no spans (the simulators)."""
    spans: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    servers: Counter[str] = Counter()
    server_parents: set[str] = set()
    clients: dict[str, str] = {}  # span id -> "service method"
    for path in sorted(trace_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    raw = json.loads(line)
                    started = int(raw["start_ns"])
                except (ValueError, KeyError):
                    continue  # a line being written
                kind = raw.get("kind", "?")
                if kind == "SERVER" and raw.get("parent_span_id"):
                    server_parents.add(raw["parent_span_id"])  # whenever it started
                if not start_ns <= started < end_ns:
                    continue
                service = raw.get("service") or path.stem.rsplit("-", 1)[0]
                spans[service] += 1
                kinds[kind] += 1
                name = f"{service} {raw.get('name', '?')}"
                if kind == "SERVER":
                    servers[name] += 1
                elif kind == "CLIENT" and str(raw.get("name", "")).startswith("/"):
                    clients[raw["span_id"]] = name + " (to an untraced server)"
    rpcs = servers + Counter(n for sid, n in clients.items() if sid not in server_parents)
    return SpanCounts(spans, rpcs, kinds)
