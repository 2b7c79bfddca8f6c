"""Base against head on this machine (`make bench-compare BASE=<rev>`).

Checks the base revision out in a temporary git worktree, builds its virtual environment from
its own uv.lock (`uv sync --frozen`, from the local cache when it can), and with this checkout's
harness runs the base stack and this checkout's stack back to back, alternating (base, head,
base, head, ...), then prints one table: metric, base, head, head/base and the spread of each
side's runs. Head is this checkout as it is, uncommitted changes included.

    python -m bench.compare --base e7223e2 [--runs 2] [--db sqlite] [bench.pipeline flags]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pipeline import (
    DATABASES,
    RESULTS,
    add_arguments,
    config_from,
    describe_revision,
    run_stack,
)
from bench.report import compare

CHECKOUT = Path(__file__).resolve().parent.parent


def git(*args: str, cwd: Path = CHECKOUT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def build_venv(worktree: Path) -> Path:
    """The worktree's own environment, from its lock file, with this machine's interpreter."""
    venv = worktree / ".venv"
    uv = Path(sys.prefix) / "bin" / "uv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    env.pop("VIRTUAL_ENV", None)
    python = os.path.realpath(sys.executable)
    command = [str(uv), "sync", "--frozen", "--python", python]
    offline = subprocess.run([*command, "--offline"], cwd=worktree, env=env, capture_output=True)
    if offline.returncode != 0:  # not all in the local cache: the package index
        subprocess.run(command, cwd=worktree, env=env, check=True, capture_output=True)
    return venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="e7223e2", help="the base revision")
    parser.add_argument("--runs", type=int, default=2, help="runs of each side (at least 2)")
    parser.add_argument("--keep-worktree", action="store_true")
    add_arguments(parser)
    parser.set_defaults(db="sqlite")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs: at least 2 of each, alternating")
    cfg = config_from(args)
    databases = list(DATABASES) if args.db == "both" else [args.db]
    base_sha = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    head_label = describe_revision(CHECKOUT)
    worktree = Path(tempfile.mkdtemp(prefix="orderline-base-"))
    shutil.rmtree(worktree)
    print(f"base {base_sha[:10]} in {worktree}; head {head_label} ({CHECKOUT})", flush=True)
    git("worktree", "add", "--detach", str(worktree), base_sha)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        db: {"base": [], "head": []} for db in databases
    }
    try:
        sides = {"base": build_venv(worktree), "head": Path(sys.prefix)}
        for i in range(args.runs):
            for side, venv in sides.items():
                for db in databases:
                    print(f"run {i + 1}/{args.runs}: {side}, {DATABASES[db]}", flush=True)
                    runs[db][side].append(run_stack(venv, db, cfg))
    finally:
        if not args.keep_worktree:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=CHECKOUT,
                check=False,
                capture_output=True,
            )
    when = datetime.now(UTC)
    parts = [
        f"# Base against head ({when:%Y-%m-%d %H:%M} UTC)\n",
        f"base {base_sha[:10]}, head {head_label}; {args.runs} runs each, alternating, "
        f"{cfg.sustained_seconds:.0f}s sustained phase each, `--auth {cfg.auth}`. base and head "
        "are medians of the runs; spread is ±half the range of one side's runs over their "
        "median.\n",
    ]
    for db in databases:
        parts.append(f"## {DATABASES[db]}\n\n{compare(runs[db]['base'], runs[db]['head'])}\n")
    text = "\n".join(parts)
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.md").write_text(text, encoding="utf-8")
    payload = {
        "when": when.isoformat(),
        "base": base_sha,
        "head": head_label,
        "auth": cfg.auth,
        "config": vars(cfg),
        "runs": runs,
    }
    (RESULTS / "compare.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"written to {RESULTS / 'compare.md'} and compare.json")


if __name__ == "__main__":
    main()
