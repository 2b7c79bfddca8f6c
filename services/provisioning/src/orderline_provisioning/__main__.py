"""`orderline-provisioning` serves; `orderline-provisioning migrate` migrates and exits."""

from orderline_runtime.entry import serve


def main() -> None:
    serve("orderline_provisioning.bootstrap")


if __name__ == "__main__":
    main()
