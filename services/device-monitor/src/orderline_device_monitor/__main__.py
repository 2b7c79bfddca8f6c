"""`orderline-device-monitor` serves; `orderline-device-monitor migrate` migrates and exits."""

from orderline_runtime.entry import serve


def main() -> None:
    serve("orderline_device_monitor.bootstrap")


if __name__ == "__main__":
    main()
