"""`orderline up` as a new user meets it: a service killed under it comes back and the demo
orders still complete; Ctrl-C stops the services first and NATS last; a quick second start
gets the same ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orderline_cli.layout import SERVICE_PORTS, SIMULATOR_PORTS
from orderline_devtools.waiting import wait_until

pytestmark = pytest.mark.e2e

DEMO_ORDERS = 6


@dataclass
class Up:
    """A running `orderline up`, its output collected line by line."""

    state_dir: Path
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, state_dir: Path, *args: str) -> Up:
        process = subprocess.Popen(
            [sys.executable, "-m", "orderline_cli.main", "up", "--devices", "40", *args],
            env={**os.environ, "ORDERLINE_STATE_DIR": str(state_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, as a terminal's foreground job: Ctrl-C signals the group.
            start_new_session=True,
        )
        up = cls(state_dir, process)
        threading.Thread(target=up._read, daemon=True).start()
        return up

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def said(self, text: str) -> bool:
        if self.process.poll() is not None and not any(text in line for line in self.lines):
            raise AssertionError(f"orderline up exited ({self.process.poll()}):\n{self.output}")
        return any(text in line for line in self.lines)

    def wait_for(self, text: str, within: float = 120) -> None:
        wait_until(f"orderline up to say {text!r}", lambda: self.said(text), within)

    def stack(self) -> dict[str, dict[str, object]]:
        return dict(json.loads((self.state_dir / "stack.json").read_text(encoding="utf-8")))

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def first_up(state_dir: Path) -> Iterator[Up]:
    up = Up.start(state_dir, "--demo", str(DEMO_ORDERS))
    try:
        yield up
    finally:
        up.kill()


def demo_orders(state_dir: Path) -> list[dict[str, object]]:
    listed = subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", "order", "list", "--json"],
        env={**os.environ, "ORDERLINE_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def _log_time(line: str) -> datetime:
    """The time of a nats-server log line ("[pid] 2026/12/06 18:39:09.153032 [INF] …")."""
    stamp = " ".join(line.split()[1:3])
    return datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").astimezone(UTC)


def _stopped_at(log: Path) -> datetime:
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stopped = [e for e in events if e.get("event") == "stopped"]
    assert stopped, f"{log.name}: no 'stopped' line"
    return datetime.fromisoformat(stopped[-1]["timestamp"])


def _warnings(log: Path, last: int = 8) -> list[str]:
    """The last warning and error lines of a service's log (what a timeout shows)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    return [x[:400] for x in lines if '"level": "warning"' in x or '"level": "error"' in x][-last:]


@pytest.mark.timeout(480)
def test_killed_services_are_restarted_the_demo_completes_and_ctrl_c_stops_nats_last(
    first_up: Up, state_dir: Path
) -> None:
    # The demo adds one order for the review queue and one pending to the orders asked for.
    first_up.wait_for(f"submitted {DEMO_ORDERS + 2} demo orders")
    first_ports = {
        name: str(a).rsplit(":", 1)[1] for name, a in first_up.stack()["addresses"].items()
    }

    for victim in ("provisioning", "intake"):
        os.kill(int(first_up.stack()["pids"][victim]), signal.SIGKILL)  # type: ignore[call-overload]
        first_up.wait_for(f"{victim} exited (code -9); restarting in")
        first_up.wait_for(f"{victim} restarted")
        first_up.wait_for(f"{victim} is serving again")

    def settled() -> list[dict[str, object]] | None:
        orders = demo_orders(state_dir)
        done = [o for o in orders if o["state"] == "completed" and o["dossier_id"]]
        held = [o for o in orders if o["state"] == "held"]
        return orders if len(done) == DEMO_ORDERS - 1 and len(held) == 1 else None

    # Killed mid-job, provisioning retries its calls with backoff up to 30 s once the peers are
    # back; on a loaded machine the restarts alone take a minute.
    def seen() -> dict[str, object]:
        logs = state_dir / "logs"
        return {
            "orders": [
                (o["id"], o["state"], o.get("state_reason"), o.get("dossier_id"))
                for o in demo_orders(state_dir)
            ],
            "up": first_up.lines[-12:],
            **{name: _warnings(logs / f"{name}.log") for name in ("provisioning", "intake")},
        }

    orders = wait_until("the demo orders to complete (one held)", settled, 300, detail=seen)
    assert len(orders) == DEMO_ORDERS + 2
    waiting = sorted(str(o["state"]) for o in orders if o["state"] not in ("completed", "held"))
    assert waiting == ["acknowledged", "pending"], waiting
    # The held order is shown with its reason.
    first_up.wait_for("held (DEVICE_ABNORMAL")

    assert first_up.ctrl_c() == 0, first_up.output
    assert "stopped; nothing left running" in first_up.output
    logs = state_dir / "logs"
    nats_exit = [line for line in (logs / "nats.log").read_text().splitlines() if "Exiting" in line]
    assert nats_exit, "nats-server did not shut down cleanly"
    for service in SERVICE_PORTS:
        text = (logs / f"{service}.log").read_text()
        assert "nats drain incomplete" not in text, service
        assert _stopped_at(logs / f"{service}.log") <= _log_time(nats_exit[-1]), service

    # A quick second start: the ports the first run had from the README are its ports again,
    # although the first run's connections still linger in TIME-WAIT. (With --json: one
    # object per line.)
    second = Up.start(state_dir, "--demo", "0", "--json")
    try:
        second.wait_for('"event": "up"')
        second_ports = {
            name: str(a).rsplit(":", 1)[1] for name, a in second.stack()["addresses"].items()
        }
        documented = {name: str(p) for name, p in {**SERVICE_PORTS, **SIMULATOR_PORTS}.items()}
        kept = {n for n, p in first_ports.items() if p == documented[n]}
        assert kept, f"every documented port was taken by another process: {first_ports}"
        assert {n: second_ports[n] for n in kept} == {n: first_ports[n] for n in kept}
        events = [json.loads(line) for line in second.lines]
        taken = {e["process"] for e in events if e["event"] == "port_taken"}
        assert not taken & kept, taken
        (up,) = [e for e in events if e["event"] == "up"]
        assert up["processes"]["intake"]["address"] == second.stack()["addresses"]["intake"]
        assert second.ctrl_c() == 0, second.output
        assert json.loads(second.lines[-1])["event"] == "stopped"
    finally:
        second.kill()


def test_up_with_a_bad_setting_names_it_and_shows_no_traceback(state_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", "up", "--demo", "0", "--devices", "40"],
        env={
            **os.environ,
            "ORDERLINE_STATE_DIR": str(state_dir),
            "ORDERLINE_AUTH_TOKENS_FILE": "/nonexistent",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "the stack did not start" in result.stderr
    assert "invalid configuration: ORDERLINE_AUTH_TOKENS_FILE: no such file: /nonexistent" in (
        result.stderr
    )
    assert "stopped; nothing left running" in result.stdout
