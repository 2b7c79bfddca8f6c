"""`orderline-provisioning` serves; `orderline-provisioning migrate` migrates and exits."""

from orderline_provisioning.bootstrap import build
from orderline_runtime.service import run_service


def main() -> None:
    run_service(build)


if __name__ == "__main__":
    main()
