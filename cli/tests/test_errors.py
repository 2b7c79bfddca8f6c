"""Every command reports a failure once, on stderr: a line for a person, or with --json one
JSON object, and nothing on stdout. No stack runs here: nothing listens at the address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orderline_devtools.local import free_port


def orderline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", *args],
        env={**os.environ, "ORDERLINE_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _commands(nowhere: str) -> dict[str, list[str]]:
    return {
        "order create": ["order", "create", "--name", "王芳", "--intake", nowhere],
        "order get": ["order", "get", "O-1", "--intake", nowhere],
        "order list": ["order", "list", "--intake", nowhere],
        "order watch": ["order", "watch", "--intake", nowhere],
        "report orders": ["report", "orders", "--reporting", nowhere],
        "trace": ["trace", "O-1"],
    }


@pytest.mark.parametrize("command", list(_commands("")))
def test_a_failing_command_with_json_prints_one_error_object_on_stderr(
    tmp_path: Path, command: str
) -> None:
    args = _commands(f"127.0.0.1:{free_port()}")[command]
    result = orderline(tmp_path, *args, "--json")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])["error"]
    assert error["code"] in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "NOT_FOUND"}
    assert error["message"]


@pytest.mark.parametrize("command", ["order get", "trace"])
def test_a_failing_command_prints_its_error_once_as_text(tmp_path: Path, command: str) -> None:
    args = _commands(f"127.0.0.1:{free_port()}")[command]
    result = orderline(tmp_path, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    code = "NOT_FOUND" if command == "trace" else "UNAVAILABLE"
    assert result.stderr.count(code) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_state_is_refused_naming_the_known_ones_in_json(tmp_path: Path) -> None:
    result = orderline(tmp_path, "order", "list", "--state", "ORDER_STATE_HELD", "--json")
    assert result.returncode == 2
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert "inProgress" in error["message"]


@pytest.mark.parametrize(
    "args", [["order", "get", "--json"], ["report", "orders", "--no-such-option", "--json"]]
)
def test_a_usage_error_with_json_is_one_error_object_too(tmp_path: Path, args: list[str]) -> None:
    result = orderline(tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["message"]
