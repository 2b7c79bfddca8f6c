"""``orderline-notification-gateway`` / ``python -m orderline_simulators.gateway``."""

from __future__ import annotations

import asyncio
import sys

from orderline_simulators.common.auth import load_identity
from orderline_simulators.common.config import load_settings
from orderline_simulators.common.logs import configure_logging
from orderline_simulators.gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings, program="orderline-notification-gateway")
    identity = load_identity(settings, program="orderline-notification-gateway")
    configure_logging(settings.log_level, service="notification-gateway")
    from orderline_simulators.gateway.app import run

    sys.exit(asyncio.run(run(settings, identity)))


if __name__ == "__main__":
    main()
