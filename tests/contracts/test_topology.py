"""Every service's wiring matches the topology declared in the event catalogue: it consumes
exactly the events that name it as a consumer, on one durable consumer per stream."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.settings import load_settings

SERVICES = {
    "intake": ("orderline_intake", "IntakeSettings"),
    "provisioning": ("orderline_provisioning", "ProvisioningSettings"),
    "device-monitor": ("orderline_device_monitor", "DeviceMonitorSettings"),
    "archive": ("orderline_archive", "ArchiveSettings"),
    "reporting": ("orderline_reporting", "ReportingSettings"),
}


def build_service(name: str, tmp_path: Path) -> Any:
    package, settings_class = SERVICES[name]
    settings_type = getattr(importlib.import_module(f"{package}.settings"), settings_class)
    settings = load_settings(settings_type, name).model_copy(
        update={
            "grpc_port": 0,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'topology.db'}",
            "trace_dir": tmp_path / "traces",
            # Provisioning refuses to start without the key it signs vouchers with.
            **(
                {"provisioning_voucher_key_file": ensure_ed25519_key_file(tmp_path / "key.pem")}
                if name == "provisioning"
                else {}
            ),
        }
    )
    return importlib.import_module(f"{package}.bootstrap").build(settings)


def test_the_catalogue_names_exactly_these_services() -> None:
    assert catalogue().services == set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_service_consumes_what_the_topology_declares(name: str, tmp_path: Path) -> None:
    service = build_service(name, tmp_path)
    try:
        declared = {e.event_type for e in catalogue().consumed_by(name)}
        assert service.consumed_event_types == declared
        streams = [c.stream.name for c in service.consumers]
        assert len(streams) == len(set(streams)), "one durable consumer per stream"
        assert all(c.durable == name for c in service.consumers)
    finally:
        await service.db.dispose()


def test_the_architecture_doc_shows_the_declared_topology() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
