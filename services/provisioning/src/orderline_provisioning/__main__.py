"""`orderline-provisioning` serves; `orderline-provisioning migrate` migrates and exits."""

from __future__ import annotations

import asyncio
import sys

from orderline_provisioning.bootstrap import build
from orderline_runtime.logs import setup_logging
from orderline_runtime.service import run_service
from orderline_runtime.telemetry import setup_tracing


def main() -> None:
    if sys.argv[1:2] not in ([], ["serve"]):
        run_service(build)  # migrate (or usage): no gRPC server is started
        return
    asyncio.run(_serve())


async def _serve() -> None:
    # Workaround: the runtime's run_service calls build() before asyncio.run(), so the
    # grpc.aio server made in Service.__init__ binds to another event loop than the one that
    # starts it ("attached to a different loop"). Built here, inside the running loop, it binds
    # to the right one. Back to `run_service(build)` once run_service builds inside its loop.
    service = build()
    setup_logging(service.name, service.settings.log_level)
    setup_tracing(service.name, service.settings.trace_dir)
    await service.run()


if __name__ == "__main__":
    main()
