"""Settings come from ORDERLINE_* variables once at start; a bad value stops the process with a
message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderline_runtime.settings import ServiceSettings, load_settings


class ArchiveSettings(ServiceSettings):
    default_grpc_port = 50054


class ProvisioningSettings(ServiceSettings):
    intake_address: str = "127.0.0.1:50051"
    retry_limit: int = 3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ORDERLINE_"):
            monkeypatch.delenv(name)


def test_defaults_run_locally_on_sqlite_with_the_service_port() -> None:
    settings = load_settings(ArchiveSettings, "archive")
    assert settings.service_name == "archive"
    assert settings.resolved_grpc_port() == 50054
    assert settings.resolved_database_url() == "sqlite+aiosqlite:///var/archive.db"
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.migrate_on_start is True


def test_environment_overrides_defaults_including_a_service_s_own_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERLINE_GRPC_PORT", "0")
    monkeypatch.setenv("ORDERLINE_DATABASE_URL", "postgresql+asyncpg://u@db/p")
    monkeypatch.setenv("ORDERLINE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("ORDERLINE_INTAKE_ADDRESS", "intake:50051")
    settings = load_settings(ProvisioningSettings, "provisioning")
    assert settings.resolved_grpc_port() == 0  # explicit 0: any free port
    assert settings.resolved_database_url() == "postgresql+asyncpg://u@db/p"
    assert settings.migrate_on_start is False
    assert settings.intake_address == "intake:50051"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORDERLINE_GRPC_PORT", "notaport"),
        ("ORDERLINE_GRPC_PORT", "70000"),
        ("ORDERLINE_LOG_LEVEL", "LOUD"),
        ("ORDERLINE_MAX_CONCURRENT_RPCS", "0"),
        ("ORDERLINE_RETRY_LIMIT", "many"),
        ("ORDERLINE_DATABASE_URL", "mysql://u@db/p"),
    ],
)
def test_bad_value_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(ProvisioningSettings, "provisioning")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "provisioning: invalid configuration" in err
    assert variable in err
    assert repr(value) in err


def test_settings_without_a_service_port_listen_on_any_free_port() -> None:
    assert load_settings(ServiceSettings, "anything").resolved_grpc_port() == 0


@pytest.mark.parametrize(
    "variable", ["ORDERLINE_AUTH_TOKENS_FILE", "ORDERLINE_NATS_CREDENTIALS_FILE"]
)
def test_a_file_setting_naming_no_file_exits_2_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "nonexistent"))
    with pytest.raises(SystemExit) as exit_info:
        load_settings(ProvisioningSettings, "provisioning")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert variable in err and "no such file" in err and str(tmp_path / "nonexistent") in err


def test_a_file_setting_naming_a_folder_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("ORDERLINE_AUTH_TOKENS_FILE", str(tmp_path))
    with pytest.raises(SystemExit):
        load_settings(ProvisioningSettings, "provisioning")
    assert "ORDERLINE_AUTH_TOKENS_FILE: not a file" in capsys.readouterr().err
