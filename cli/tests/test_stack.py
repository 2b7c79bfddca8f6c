"""The local stack's process handling."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from orderline_cli.stack import LocalStack, Proc


def test_a_process_restarted_from_a_short_lived_thread_keeps_running(tmp_path: Path) -> None:
    # A chaos test restarts killed services from its own thread; when that thread ends, the
    # services it started must not get the "parent died" signal meant for `orderline up`.
    proc = Proc(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, 0, tmp_path / "s.log"
    )
    starter = threading.Thread(target=proc.start)
    starter.start()
    starter.join()
    try:
        time.sleep(1.0)  # the signal would arrive at once; give it ample time to
        assert proc.running
    finally:
        proc.signal(signal.SIGKILL)
        proc.wait(10)


def test_a_process_that_dies_at_start_is_reported_with_its_code_and_last_log_lines(
    tmp_path: Path,
) -> None:
    # CI keeps a failed run's output but not its log files: the error must carry the cause.
    script = "import sys\nfor i in range(40): print('line', i)\nsys.exit('cannot bind port 1234')"
    stack = LocalStack(tmp_path)
    stack.procs["dying"] = Proc("dying", [sys.executable, "-c", script], {}, 0, tmp_path / "d.log")
    stack.procs["dying"].start()
    with pytest.raises(RuntimeError) as raised:
        stack.wait_healthy(["dying"], timeout=30)
    message = str(raised.value)
    assert "dying exited (code 1)" in message
    assert "cannot bind port 1234" in message
    assert "line 39" in message
    assert "line 0\n" not in message
