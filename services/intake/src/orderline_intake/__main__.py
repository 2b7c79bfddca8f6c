"""`orderline-intake` serves; `orderline-intake migrate` migrates the database and exits."""

from orderline_intake.bootstrap import build
from orderline_runtime.service import run_service


def main() -> None:
    run_service(build)


if __name__ == "__main__":
    main()
