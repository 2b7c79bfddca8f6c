"""The local stack's process handling."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from orderline_cli.stack import LocalStack, Proc, port_is_free
from orderline_devtools.local import free_port


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


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    return server


def test_a_port_whose_last_connection_is_in_time_wait_is_free_again() -> None:
    # A quick restart: the old server closed its connections first, so they sit in TIME-WAIT
    # on its port; a new server (binding with SO_REUSEADDR, as gRPC and NATS do) can take it.
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's end closes first: TIME-WAIT on the server's port
    client.close()
    server.close()
    assert port_is_free(port)


def test_a_port_another_process_listens_on_is_taken_and_the_stack_moves_loudly(
    tmp_path: Path,
) -> None:
    server = _listener()
    port = server.getsockname()[1]
    try:
        assert not port_is_free(port)
        stack = LocalStack(tmp_path)
        used = stack.choose_port("intake", port)
        assert used != port and port_is_free(used)
        assert stack.moved_ports == [("intake", port, used)]
    finally:
        server.close()
