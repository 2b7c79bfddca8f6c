"""`orderline-reporting` serves; `orderline-reporting migrate` applies migrations and exits."""

from __future__ import annotations

from orderline_runtime.entry import serve


def main() -> None:
    serve("orderline_reporting.bootstrap")


if __name__ == "__main__":
    main()
