"""``orderline-device-fleet`` / ``python -m orderline_simulators.fleet``."""

from __future__ import annotations

import asyncio
import sys

from orderline_simulators.common.auth import load_identity
from orderline_simulators.common.config import load_settings
from orderline_simulators.common.logs import configure_logging
from orderline_simulators.fleet.settings import FleetSettings


def main() -> None:
    settings = load_settings(FleetSettings, program="orderline-device-fleet")
    identity = load_identity(settings, program="orderline-device-fleet")
    configure_logging(settings.log_level, service="device-fleet")
    from orderline_simulators.fleet.app import run

    sys.exit(asyncio.run(run(settings, identity)))


if __name__ == "__main__":
    main()
