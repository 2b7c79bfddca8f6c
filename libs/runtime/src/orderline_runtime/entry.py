"""A service's entry point: `serve("orderline_<service>.bootstrap")`."""

from __future__ import annotations

import importlib
import sys


def serve(bootstrap_module: str) -> None:
    """Runs the service whose `build` the module holds (`run_service`), after marking `rich`
    absent. structlog imports `rich` as it is imported itself whenever `rich` is installed,
    and it is: the `orderline` CLI, in the same image and the same local environment, needs
    it. A service logs JSON and never renders with it, and rich with pygments is about 4 MiB
    of every idle service's resident memory (docs/performance.md). So nothing of the
    service, structlog included, may be imported before this runs."""
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    from orderline_runtime.service import run_service

    run_service(importlib.import_module(bootstrap_module).build)
