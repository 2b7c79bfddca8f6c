"""The local stack's process handling."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from orderline_cli.stack import Proc


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
