"""Where the local stack's processes listen and where `orderline up` records what it started.

Only standard library: the commands that talk to a running stack read this in an image that
has no development tools (the local stack itself, `orderline up`, needs them).
"""

from __future__ import annotations

import json
from pathlib import Path

# The documented ports (README): a service's own settings default to the same one.
SERVICE_PORTS = {
    "intake": 50051,
    "provisioning": 50052,
    "device-monitor": 50053,
    "archive": 50054,
    "reporting": 50055,
}
SIMULATOR_PORTS = {"fleet": 50061, "gateway": 50062}
SERVICES = tuple(SERVICE_PORTS)
# NATS's own port plus 10000: never a NATS the machine already runs on 4222.
NATS_PORT = 14222
STACK_FILE = "stack.json"


def read_stack_file(state_dir: Path) -> dict[str, object] | None:
    path = state_dir / STACK_FILE
    if not path.exists():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))
