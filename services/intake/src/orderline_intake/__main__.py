"""`orderline-intake` serves; `orderline-intake migrate` migrates the database and exits."""

from orderline_runtime.entry import serve


def main() -> None:
    serve("orderline_intake.bootstrap")


if __name__ == "__main__":
    main()
