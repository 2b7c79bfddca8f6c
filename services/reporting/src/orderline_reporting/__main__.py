"""`orderline-reporting` serves; `orderline-reporting migrate` applies migrations and exits."""

from __future__ import annotations

from orderline_reporting.bootstrap import build
from orderline_runtime.service import run_service


def main() -> None:
    run_service(build)


if __name__ == "__main__":
    main()
