"""Pipeline benchmark (`make bench`): open-loop load against the whole local stack (five
services, NATS, both simulators; PostgreSQL too when measured), for SQLite and PostgreSQL.

Prints one table and writes bench/results/pipeline.md and pipeline.json. How it measures:
docs/performance.md, "How the benchmark measures".

    python -m bench.pipeline [--db sqlite|postgres|both] [--sustained-seconds 60] [--quick]
                             [--auth development|jwt]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.identity import AUTH_MODES
from bench.one import START_FAILED, config_json
from bench.report import by_database
from bench.run import Config

RESULTS = Path(__file__).parent / "results"
DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
AUTH_DESCRIPTIONS = {
    "development": "development tokens (dev-*) and intake's development keys",
    "jwt": "production identity: JWTs (Ed25519) verified against a JWKS file, development "
    "tokens off, intake's PII keyring and customer hash key from key files",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Config()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sustained-seconds", type=float, default=d.sustained_seconds)
    parser.add_argument("--warmup-seconds", type=float, default=d.warmup_seconds)
    parser.add_argument(
        "--rate", type=float, default=None, help="sustained arrival rate (default: probed)"
    )
    parser.add_argument("--load-factor", type=float, default=d.load_factor)
    parser.add_argument(
        "--sustained-attempts",
        type=int,
        default=d.sustained_attempts,
        help="sustained phases at most: after one that fell behind, one slower",
    )
    parser.add_argument(
        "--climb",
        action="store_true",
        help="after a sustained phase that kept up, one 15%% faster (within the attempts): "
        "the fastest that kept up is reported",
    )
    parser.add_argument("--probe-step-seconds", type=float, default=d.probe_step_seconds)
    parser.add_argument("--latency-seconds", type=float, default=d.latency_seconds)
    parser.add_argument("--overload-seconds", type=float, default=d.overload_seconds)
    parser.add_argument("--create-deadline", type=float, default=d.create_deadline)
    parser.add_argument("--arrivals", choices=["poisson", "fixed"], default="poisson")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--devices", type=int, default=d.devices)
    parser.add_argument(
        "--quick", action="store_true", help="short phases (15s sustained): a smoke run"
    )
    parser.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default=d.auth,
        help="development (default): ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true, dev-* tokens "
        "and intake's development keys, as before. "
        "jwt: as production: development tokens off, every token a JWT (EdDSA) verified "
        "against a JWKS file (each service's and the fleet's ORDERLINE_SERVICE_TOKEN, the "
        "front end's CreateOrder, the clerk's WatchOrders), intake's PII keyring and customer "
        "hash key from key files, provisioning's operator certified by a seed; keys made per "
        "run in its temporary directory (bench/identity.py). jwt works with the current head "
        "only: make bench-compare runs both sides in the mode given, and an older base (the "
        "default e7223e2) understands development only",
    )


def config_from(args: argparse.Namespace) -> Config:
    cfg = Config(
        sustained_seconds=args.sustained_seconds,
        warmup_seconds=args.warmup_seconds,
        rate=args.rate,
        load_factor=args.load_factor,
        sustained_attempts=args.sustained_attempts,
        climb=args.climb,
        probe_step_seconds=args.probe_step_seconds,
        latency_seconds=args.latency_seconds,
        overload_seconds=args.overload_seconds,
        create_deadline=args.create_deadline,
        poisson=args.arrivals == "poisson",
        seed=args.seed,
        devices=args.devices,
        auth=args.auth,
    )
    if args.quick:
        cfg.sustained_seconds = min(cfg.sustained_seconds, 15)
        cfg.warmup_seconds = min(cfg.warmup_seconds, 5)
        cfg.probe_step_seconds = min(cfg.probe_step_seconds, 4)
        cfg.latency_seconds = min(cfg.latency_seconds, 8)
        cfg.overload_seconds = min(cfg.overload_seconds, 5)
    return cfg


def run_stack(venv: Path, database: str, cfg: Config, attempts: int = 3) -> dict[str, Any]:
    """Starts the stack of the checkout whose environment is `venv`, measures, stops it; in a
    harness process of its own (bench.one). A stack that does not start is tried again."""
    checkout = Path(__file__).resolve().parent.parent
    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryDirectory(prefix="orderline-bench-run-") as tmp:
            out = Path(tmp) / "result.json"
            command = [sys.executable, "-m", "bench.one", str(venv), database]
            command += [config_json(cfg), str(out)]
            code = subprocess.run(command, cwd=checkout, check=False).returncode
            if code == 0:
                result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
                result["start_attempts"] = attempt
                return result
            if code != START_FAILED:
                raise SystemExit(f"benchmark run failed (exit code {code})")
            print(f"  the stack did not start (attempt {attempt} of {attempts})", flush=True)
    raise SystemExit("the stack did not start")


def describe_revision(checkout: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("describe", "--always", "--dirty") or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    cfg = config_from(args)
    databases = list(DATABASES) if args.db == "both" else [args.db]
    venv = Path(sys.prefix)
    checkout = Path(__file__).resolve().parent.parent
    results = {}
    for db in databases:
        print(f"{DATABASES[db]}:", flush=True)
        results[DATABASES[db]] = run_stack(venv, db, cfg)
    when = datetime.now(UTC)
    revision = describe_revision(checkout)
    table = by_database(results)
    text = (
        f"# Pipeline benchmark ({when:%Y-%m-%d %H:%M} UTC, {revision})\n\n"
        f"Open-loop {args.arrivals} arrivals; {cfg.warmup_seconds:.0f}s warm-up, "
        f"{cfg.sustained_seconds:.0f}s sustained phase; {cfg.devices} simulated devices, "
        "device and gateway delays 0; every process of the stack counted. "
        f"Authentication: `--auth {cfg.auth}`, {AUTH_DESCRIPTIONS[cfg.auth]}. "
        'See docs/performance.md, "How the benchmark measures".\n\n'
        f"{table}\n"
    )
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline.md").write_text(text, encoding="utf-8")
    payload = {
        "when": when.isoformat(),
        "revision": revision,
        "auth": cfg.auth,
        "config": vars(cfg),
        "results": results,
    }
    (RESULTS / "pipeline.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"written to {RESULTS / 'pipeline.md'} and pipeline.json")


if __name__ == "__main__":
    main()
