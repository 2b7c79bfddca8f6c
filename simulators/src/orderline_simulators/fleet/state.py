"""The devices' state on disk, so that a restart of the simulator is not a factory reset of
every device (`ORDERLINE_FLEET_STATE_DIR`): one JSON file per device, replaced whole after
each change. A real device keeps its configuration, its service and the operations it has
done when whatever manages it restarts; without this, a crash of the simulator would reset
the devices of every job in flight, which no fleet does."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orderline_simulators.common.logs import get_logger
from orderline_simulators.fleet.domain import Device, Fleet

log = get_logger("device-fleet")


class DeviceStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, device_id: str) -> Path:
        return self.directory / f"{device_id}.json"

    def load_into(self, fleet: Fleet) -> int:
        """Restores every device of the fleet that has a file; returns how many."""
        restored = 0
        for device in fleet.devices():
            path = self.path_of(device.device_id)
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            device.restore(record)
            restored += 1
        return restored

    def save(self, device: Device) -> None:
        """Replaces the device's file (a rename: a crash leaves the old file or the new)."""
        path = self.path_of(device.device_id)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(device.to_record(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
