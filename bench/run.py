"""One benchmark run against one started stack: idle figures, warm-up, the sustained rate
(probed, or given), the sustained phase with every counter, latency without backlog, and
CreateOrder under four times the sustained rate."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import counters, procstat, sqlite_wal
from bench.load import Driver
from bench.stack import SERVICES, BenchStack
from bench.stats import percentile
from orderline_cli.demo import demo_request


@dataclass
class Config:
    sustained_seconds: float = 60.0
    warmup_seconds: float = 10.0
    rate: float | None = None  # sustained arrival rate; None: probe for it
    load_factor: float = 1.0  # share of the probed capacity offered in the sustained phase
    sustained_attempts: int = 2  # sustained phases at most
    climb: bool = False  # after a phase that kept up, try 15% faster (a search)
    probe_start: float = 4.0
    probe_step_seconds: float = 8.0
    probe_max: float = 512.0
    latency_seconds: float = 20.0
    overload_seconds: float = 10.0
    overload_factor: float = 4.0
    create_deadline: float = 10.0
    poisson: bool = True
    seed: int = 1
    devices: int = 100
    idle_seconds: float = 5.0
    # "development" (dev-* tokens, development keys) or "jwt" (production identity:
    # bench/identity.py; only revisions that read the JWKS and intake's key files)
    auth: str = "development"


class HarnessMismatch(RuntimeError):
    """The revision under test refuses the harness's requests."""


def comparable_request(i: int, device: str) -> Any:
    """The demo's order, also carrying the identity number in the field revisions before the
    structured `customer.identity` read (`customer.id_number`): `make bench-compare` drives
    a base revision with these requests, and one that refuses them measures nothing. A
    revision that knows `identity` ignores the old field when both are set."""
    request = demo_request(i, device)
    request.customer.id_number = request.customer.identity.resident_id
    return request


NAMED_CODES = ("OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")
Metric = dict[str, Any]  # {"value": float | None, "unit": str, "better": "lower"|"higher"|""}


def metric(value: float | None, unit: str, better: str = "") -> Metric:
    return {"value": value, "unit": unit, "better": better}


class Snapshot:
    """Every counter at one moment."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.pg_names = {s: s.replace("-", "_") for s in SERVICES}

    async def take(self) -> dict[str, Any]:
        stack = self.stack
        at = time.time()
        cpu = procstat.tree_cpu_seconds(stack.pids())
        assert stack.nats is not None
        streams = await counters.stream_sequences(stack.nats.url)
        txns: dict[str, int | None]
        if stack.postgres is not None:
            dsn = stack.postgres.url("postgres").replace("+asyncpg", "")
            txns = dict(await counters.pg_commits(dsn, self.pg_names))
        else:
            txns = counters.sqlite_commits(stack.db_dir, SERVICES)
        return {"at": at, "cpu": cpu, "streams": streams, "txns": txns}


def _txn_delta(
    stack: BenchStack,
    before: dict[str, Any],
    after: dict[str, Any],
    services: tuple[str, ...] = SERVICES,
) -> int | None:
    total = 0
    for svc in services:
        b, a = before["txns"].get(svc), after["txns"].get(svc)
        if b is None or a is None:
            return None
        total += sqlite_wal.delta(b, a) if stack.postgres is None else a - b
    return total


# A phase in which the stack refused more than this share of its creates (admission's
# RESOURCE_EXHAUSTED under saturation) did not sustain its rate, whatever its backlog did: the
# refused orders never join the backlog.
REFUSED_TOLERANCE = 0.01


def _falling_behind(
    rate: float, grew: int, completed_per_s: float, refused_share: float = 0.0
) -> bool:
    """The stack refused creates, or the backlog grew by more than a second of arrivals (at
    least 10 orders) and fewer than 90% of the arrivals completed: not a Poisson burst, not
    orders merely in flight."""
    if refused_share > REFUSED_TOLERANCE:
        return True
    return grew > max(10.0, rate) and completed_per_s < 0.9 * rate


def _refused_share(calls: list[Any]) -> float:
    """The share of the finished creates among `calls` that did not succeed."""
    finished = [c for c in calls if c.code]
    return sum(1 for c in finished if c.code != "OK") / len(finished) if finished else 0.0


async def probe_capacity(driver: Driver, cfg: Config, rng: random.Random, log: Any) -> float:
    """Raises an open-loop rate by half at each step until the pipeline falls behind; the
    capacity is the best completion rate seen over the last two thirds of a step."""
    rate = cfg.probe_start
    best = 0.0
    while True:
        step = cfg.probe_step_seconds
        await driver.open_loop("probe", rate, step / 3, cfg.poisson, rng)
        before = driver.ledger.backlog() + driver.in_flight
        start, end = await driver.open_loop("probe", rate, step * 2 / 3, cfg.poisson, rng)
        after = driver.ledger.backlog() + driver.in_flight
        done = driver.ledger.completions_between(start, end) / (end - start)
        refused = _refused_share(
            [c for c in driver.ledger.calls if c.phase == "probe" and start <= c.sent < end]
        )
        best = max(best, done)
        log(
            f"  probe {rate:.1f}/s: {done:.1f} completed/s, backlog {before} -> {after},"
            f" refused {refused:.0%}"
        )
        if _falling_behind(rate, after - before, done, refused) or rate * 1.5 > cfg.probe_max:
            break
        rate *= 1.5
    await driver.drain(300)
    return max(best, 0.5)


@dataclass
class Sustained:
    attempt: int
    rate: float
    before: dict[str, Any]
    after: dict[str, Any]
    backlog_start: int
    backlog_end: int
    completed: int
    drained: bool
    refused_share: float = 0.0

    @property
    def label(self) -> str:
        return f"sustained-{self.attempt}"

    @property
    def window(self) -> tuple[float, float]:
        return self.before["at"], self.after["at"]

    @property
    def seconds(self) -> float:
        return float(self.after["at"] - self.before["at"])

    @property
    def kept_up(self) -> bool:
        grew = self.backlog_end - self.backlog_start
        return not _falling_behind(
            self.rate, grew, self.completed / self.seconds, self.refused_share
        )


async def sustained_search(
    driver: Driver, snap: Snapshot, rate: float, cfg: Config, rng: random.Random, log: Any
) -> Sustained:
    """Sustained phases, at most `cfg.sustained_attempts`: after one that fell behind the next
    offers 90% of the completion rate it managed; after one that kept up, with `cfg.climb`, the
    next offers 15% more (else that one is the result). The result is the fastest phase that
    kept up, else the last one. A given `cfg.rate` is run once."""
    best: Sustained | None = None
    last: Sustained | None = None
    for attempt in range(1, (1 if cfg.rate else cfg.sustained_attempts) + 1):
        log(f"  sustained at {rate}/s: warm-up, then {cfg.sustained_seconds:.0f}s")
        await driver.open_loop("warm-up", rate, cfg.warmup_seconds, cfg.poisson, rng)
        backlog_start = driver.ledger.backlog() + driver.in_flight
        before = await snap.take()
        label = f"sustained-{attempt}"
        await driver.open_loop(label, rate, cfg.sustained_seconds, cfg.poisson, rng)
        after = await snap.take()
        backlog_end = driver.ledger.backlog() + driver.in_flight
        drained = await driver.drain(300)
        completed = driver.ledger.completions_between(before["at"], after["at"])
        last = Sustained(
            attempt,
            rate,
            before,
            after,
            backlog_start,
            backlog_end,
            completed,
            drained,
            _refused_share([c for c in driver.ledger.calls if c.phase == label]),
        )
        done = completed / last.seconds
        log(f"  {done:.1f} completed/s: " + ("kept up" if last.kept_up else "fell behind"))
        if last.kept_up:
            best = last
            if not cfg.climb:
                break
            rate = round(rate * 1.15, 1)
        elif best is not None:
            break  # a slower rate kept up already
        else:
            rate = round(0.9 * done, 1)
    assert last is not None
    return best or last


async def measure(stack: BenchStack, cfg: Config, log: Any = print) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    pids = stack.pids()
    await asyncio.sleep(3)  # start-up settles
    rss = {name: procstat.rss_mib(pid) for name, pid in pids.items()}
    idle0 = procstat.tree_cpu_seconds(pids)
    t0 = time.time()
    await asyncio.sleep(cfg.idle_seconds)
    idle1 = procstat.tree_cpu_seconds(pids)
    idle_cpu = sum(idle1.values()) - sum(idle0.values())
    idle_seconds = time.time() - t0
    idle_cpu_per_s = idle_cpu / idle_seconds * 1000

    def request(i: int) -> Any:
        return comparable_request(i, f"CPE-{i % cfg.devices + 1:04d}")

    snap = Snapshot(stack)
    create_metadata, watch_metadata = stack.client_metadata()
    async with Driver(stack.address("intake"), request, create_metadata, watch_metadata) as driver:
        driver.deadline = cfg.create_deadline
        log("  warm-up")
        await driver.open_loop("warm-up", 2.0, cfg.warmup_seconds, cfg.poisson, rng)
        await driver.drain(120)
        refused = Counter(
            c.code for c in driver.ledger.calls if c.phase == "warm-up" and c.code not in ("OK", "")
        )
        if refused:
            # At 2 orders/s nothing is overloaded: a refusal means this revision does not
            # accept the harness's requests, and any figure from it would measure nothing.
            raise HarnessMismatch(f"CreateOrder refused during the warm-up: {dict(refused)}")
        rate = cfg.rate or round(cfg.load_factor * await probe_capacity(driver, cfg, rng, log), 1)
        chosen = await sustained_search(driver, snap, rate, cfg, rng, log)
        rate, before, after = chosen.rate, chosen.before, chosen.after
        window, seconds, completed = chosen.window, chosen.seconds, chosen.completed
        backlog_start, backlog_end = chosen.backlog_start, chosen.backlog_end
        kept_up, drained, attempts = chosen.kept_up, chosen.drained, chosen.attempt
        calls = [c for c in driver.ledger.calls if c.phase == chosen.label]
        arrivals = sum(1 for c in calls if window[0] <= c.sent < window[1])
        sustained_errors = Counter(c.code for c in calls if c.code != "OK")

        log(f"  latency at {rate / 2:.1f}/s")
        await driver.open_loop("latency", rate / 2, cfg.latency_seconds, cfg.poisson, rng)
        await driver.drain(120)
        e2e = [
            (driver.ledger.completed[c.order_id] - c.sent) * 1000
            for c in driver.ledger.created("latency")
            if c.order_id in driver.ledger.completed
        ]
        latency_missing = len(driver.ledger.created("latency")) - len(e2e)

        over_rate = cfg.overload_factor * rate
        log(f"  overload at {over_rate:.1f}/s")
        await driver.open_loop("overload", over_rate, cfg.overload_seconds, cfg.poisson, rng)
        await driver.settle(cfg.create_deadline + 5)
        over = [c for c in driver.ledger.calls if c.phase == "overload"]
    await asyncio.sleep(1.5)  # spans leave their batch processors
    spans = counters.count_spans(stack.trace_dir, int(window[0] * 1e9), int(window[1] * 1e9))

    cpu = {n: after["cpu"].get(n, 0.0) - before["cpu"].get(n, 0.0) for n in after["cpu"]}
    per = completed or 1
    events = sum(after["streams"].get(s, 0) - v for s, v in before["streams"].items())
    events += sum(v for s, v in after["streams"].items() if s not in before["streams"])
    txns = _txn_delta(stack, before, after)
    codes = Counter(c.code for c in over)
    ok = [c.latency * 1000 for c in over if c.code == "OK"]
    m: dict[str, Metric] = {
        "CPU per order (all processes)": metric(sum(cpu.values()) * 1000 / per, "ms", "lower"),
        "create → completed sustained": metric(completed / seconds, "orders/s", "higher"),
        "sustained: offered rate": metric(rate, "orders/s"),
        "sustained: arrivals in window": metric(arrivals, "orders"),
        "sustained: completed in window": metric(completed, "orders"),
        "sustained: kept up (1 yes, 0 no)": metric(1 if kept_up else 0, ""),
        "sustained: phase reported (1st, 2nd, ...)": metric(attempts, ""),
        "sustained: backlog at the start": metric(backlog_start, "orders"),
        "sustained: backlog at the end": metric(backlog_end, "orders", "lower"),
        "sustained: CreateOrder errors": metric(sum(sustained_errors.values()), "calls", "lower"),
        "CPU used (all processes), sustained": metric(sum(cpu.values()) / seconds, "cores"),
        "create → completed p50, no backlog": metric(percentile(e2e, 50), "ms", "lower"),
        "create → completed p99, no backlog": metric(percentile(e2e, 99), "ms", "lower"),
        "no backlog: orders not completed": metric(latency_missing, "orders", "lower"),
        "CreateOrder p99 at 4x sustained (OK calls)": metric(percentile(ok, 99), "ms", "lower"),
        "CreateOrder p99 at 4x sustained (all calls)": metric(
            percentile([c.latency * 1000 for c in over], 99), "ms", "lower"
        ),
        "CreateOrder at 4x: calls": metric(len(over), "calls"),
        "CreateOrder at 4x: UNAVAILABLE": metric(codes["UNAVAILABLE"], "calls", "lower"),
        "CreateOrder at 4x: RESOURCE_EXHAUSTED": metric(codes["RESOURCE_EXHAUSTED"], "calls"),
        "CreateOrder at 4x: DEADLINE_EXCEEDED": metric(
            codes["DEADLINE_EXCEEDED"], "calls", "lower"
        ),
        "CreateOrder at 4x: other errors": metric(
            sum(v for k, v in codes.items() if k not in NAMED_CODES), "calls", "lower"
        ),
        "idle CPU (all processes)": metric(idle_cpu_per_s, "ms/s", "lower"),
        "transactions per order": metric(None if txns is None else txns / per, "", "lower"),
        "events per order": metric(events / per, "", "lower"),
        "RPCs per order": metric(sum(spans.rpcs.values()) / per, "", "lower"),
        "spans per order": metric(sum(spans.spans.values()) / per, "", "lower"),
    }
    for name in SERVICES:
        m[f"idle RSS {name}"] = metric(rss.get(name), "MiB", "lower")
    for name in sorted(cpu, key=lambda n: -cpu[n]):
        m[f"CPU per order: {name}"] = metric(cpu[name] * 1000 / per, "ms", "lower")
    details = {
        "auth": stack.auth,
        "window_seconds": seconds,
        "drained_after_sustained": drained,
        "sustained_errors": dict(sustained_errors),
        "overload_codes": dict(codes),
        "idle_rss_mib": rss,
        # Background work (the fleet's telemetry, leases, pulls) is in every order's share of
        # the sustained CPU: which process it comes from.
        "idle_cpu_ms_per_s": {
            name: round((idle1[name] - idle0.get(name, 0.0)) / idle_seconds * 1000, 2)
            for name in idle1
        },
        "events_by_stream": {
            s: after["streams"].get(s, 0) - before["streams"].get(s, 0) for s in after["streams"]
        },
        "transactions_by_service": {s: _txn_delta(stack, before, after, (s,)) for s in SERVICES},
        "spans_by_service": dict(spans.spans),
        "rpcs_by_method": dict(spans.rpcs.most_common()),
        "spans_by_kind": dict(spans.kinds),
    }
    return {"metrics": m, "details": details}
