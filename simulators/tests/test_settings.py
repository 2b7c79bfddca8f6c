"""Settings are read once from ORDERLINE_* and bad values stop the process with a clear message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orderline_simulators.fleet.domain import FaultSpec, HealthCategory
from orderline_simulators.fleet.settings import FleetSettings
from orderline_simulators.gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ORDERLINE_"):
            monkeypatch.delenv(key)


def test_fleet_defaults() -> None:
    settings = FleetSettings()
    assert settings.fleet_host == "127.0.0.1"
    assert settings.fleet_port == 50061
    assert settings.fleet_devices == 100
    assert settings.fleet_faults == ()
    assert settings.telemetry_target == "127.0.0.1:50053"
    assert settings.telemetry_interval_seconds == 1.0
    assert settings.service_token == "dev-service"


def test_fleet_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERLINE_FLEET_PORT", "6000")
    monkeypatch.setenv("ORDERLINE_FLEET_DEVICES", "20")
    monkeypatch.setenv("ORDERLINE_FLEET_FAULTS", "CPE-0007:thermal,CPE-0013:line")
    monkeypatch.setenv("ORDERLINE_TELEMETRY_INTERVAL_SECONDS", "0.25")
    settings = FleetSettings()
    assert settings.fleet_port == 6000
    assert settings.fleet_faults == (
        FaultSpec("CPE-0007", HealthCategory.THERMAL),
        FaultSpec("CPE-0013", HealthCategory.LINE),
    )
    assert settings.telemetry_interval_seconds == 0.25


def test_gateway_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewaySettings().gateway_port == 50062
    monkeypatch.setenv("ORDERLINE_GATEWAY_FAILURE_RATE", "0.25")
    monkeypatch.setenv("ORDERLINE_GATEWAY_DELAY_MS", "150")
    settings = GatewaySettings()
    assert (settings.gateway_failure_rate, settings.gateway_delay_ms) == (0.25, 150)


@pytest.mark.parametrize(
    ("module", "env", "variable"),
    [
        ("orderline_simulators.fleet", {"ORDERLINE_FLEET_PORT": "seventy"}, "ORDERLINE_FLEET_PORT"),
        ("orderline_simulators.fleet", {"ORDERLINE_FLEET_PORT": "70000"}, "ORDERLINE_FLEET_PORT"),
        ("orderline_simulators.fleet", {"ORDERLINE_FLEET_DEVICES": "0"}, "ORDERLINE_FLEET_DEVICES"),
        (
            "orderline_simulators.fleet",
            {"ORDERLINE_FLEET_DEVICES": "10", "ORDERLINE_FLEET_FAULTS": "CPE-0011:thermal"},
            "ORDERLINE_FLEET_FAULTS",
        ),
        (
            "orderline_simulators.fleet",
            {"ORDERLINE_FLEET_FAULTS": "CPE-0001:smoke"},
            "ORDERLINE_FLEET_FAULTS",
        ),
        (
            "orderline_simulators.fleet",
            {"ORDERLINE_TELEMETRY_INTERVAL_SECONDS": "0"},
            "ORDERLINE_TELEMETRY_INTERVAL_SECONDS",
        ),
        ("orderline_simulators.fleet", {"ORDERLINE_LOG_LEVEL": "LOUD"}, "ORDERLINE_LOG_LEVEL"),
        (
            "orderline_simulators.gateway",
            {"ORDERLINE_GATEWAY_FAILURE_RATE": "1.5"},
            "ORDERLINE_GATEWAY_FAILURE_RATE",
        ),
        (
            "orderline_simulators.gateway",
            {"ORDERLINE_GATEWAY_DELAY_MS": "-5"},
            "ORDERLINE_GATEWAY_DELAY_MS",
        ),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(
    module: str, env: dict[str, str], variable: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # never "ready"
    assert "invalid configuration" in result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
        result = subprocess.run(
            [sys.executable, "-m", "orderline_simulators.gateway"],
            env={**clean, "ORDERLINE_GATEWAY_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("module", "env", "problem"),
    [
        (
            "orderline_simulators.gateway",
            {"ORDERLINE_AUTH_TOKENS_FILE": "/nonexistent/t.json"},
            "invalid configuration: ORDERLINE_AUTH_TOKENS_FILE: no such file: /nonexistent/t.json",
        ),
        (
            "orderline_simulators.fleet",
            {"ORDERLINE_AUTH_JWKS_URL": "https://idp.example.test/jwks"},
            "JWT bearer tokens need ORDERLINE_AUTH_ISSUER and ORDERLINE_AUTH_AUDIENCE",
        ),
        (
            "orderline_simulators.gateway",
            {"ORDERLINE_AUTH_TOKENS_FILE": "{tmp}/tokens.json"},
            "is not JSON",
        ),
    ],
)
def test_an_unusable_identity_configuration_stops_the_simulator_with_one_line(
    tmp_path: Path, module: str, env: dict[str, str], problem: str
) -> None:
    # The identity settings are the services' (orderline_runtime's IdentitySettings).
    (tmp_path / "tokens.json").write_text("not json")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, **{k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # never "ready"
    assert "invalid configuration" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr
