"""One measured run in a process of its own: `python -m bench.one VENV DATABASE CONFIG OUT`.

Each run gets a fresh harness process, so no gRPC threads or state of an earlier run are
around when this one forks its stack, and the harness's own footprint is the same every time.
Exit code 3: the stack did not start (a process exited or never answered SERVING).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from bench.run import Config, measure
from bench.stack import BenchStack

START_FAILED = 3


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # the stack's servers are stopped on the way out


def run(venv: Path, database: str, cfg: Config) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orderline-bench-") as tmp:
        stack = BenchStack(venv, Path(tmp), database=database, devices=cfg.devices, auth=cfg.auth)
        try:
            try:
                stack.start()
            except (RuntimeError, TimeoutError) as exc:
                print(f"stack did not start: {exc}", file=sys.stderr, flush=True)
                raise SystemExit(START_FAILED) from None
            return asyncio.run(measure(stack, cfg))
        finally:
            stack.stop()


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    venv, database, config, out = sys.argv[1:5]
    cfg = Config(**json.loads(config))
    result = run(Path(venv), database, cfg)
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def config_json(cfg: Config) -> str:
    return json.dumps(asdict(cfg))


if __name__ == "__main__":
    main()
