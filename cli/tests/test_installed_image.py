"""The CLI as the image installs it: without the development tools (no orderline_devtools)."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs the CLI in a process where importing orderline_devtools fails, as in the image.
WITHOUT_DEVTOOLS = (
    "import sys; sys.modules['orderline_devtools'] = None; "
    "from orderline_cli.main import app; sys.argv[0] = 'orderline'; app()"
)


def orderline_without_devtools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_DEVTOOLS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_up_without_the_development_tools_says_in_one_line_what_to_do() -> None:
    result = orderline_without_devtools("up")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "FAILED_PRECONDITION: orderline up: the local stack needs a development checkout "
        "(there: make run)"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_commands_for_a_running_stack_work_without_the_development_tools() -> None:
    result = orderline_without_devtools("order", "list", "--help")
    assert result.returncode == 0, result.stderr
    assert "List orders" in result.stdout


def test_up_without_the_development_tools_with_json_prints_one_error_object() -> None:
    result = orderline_without_devtools("up", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert json.loads(result.stderr)["error"]["code"] == "FAILED_PRECONDITION"
