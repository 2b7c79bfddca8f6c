"""The local stack: NATS, the five services and the two simulators as real processes.

Used by `orderline up`, the end-to-end tests and the benchmark, so all three run the system
the same way. Each process gets its ports, database and trace directory through the same
environment variables a Kubernetes pod gets.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline_cli.channels import open_channel
from orderline_cli.layout import (
    NATS_PORT,
    SERVICE_PORTS,
    SERVICES,
    SIMULATOR_PORTS,
    STACK_FILE,
    read_stack_file,
)
from orderline_devtools.local import NatsServer, free_port
from orderline_runtime.keys import ensure_ed25519_key_file, public_key_file

__all__ = ["SERVICES", "LocalStack", "Proc", "health_check", "read_stack_file"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A child must not outlive `orderline up`, even when up itself is killed with SIGKILL.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: a child
# started from a short-lived thread (a test restarting a killed service) would get SIGTERM as
# soon as that thread returned. Every child is therefore forked by this one thread, which lives
# as long as the process.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderline-spawner")


def _spawn(command: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    # Each child in its own session: a terminal's Ctrl-C reaches only `orderline up`, which
    # then stops the services first and NATS last, so the services can drain into it.
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _spawn_nats(command: list[str]) -> subprocess.Popen[bytes]:
    # nats-server writes its own log (-l); its output is not needed.
    return _spawner.submit(_spawn, command, dict(os.environ), None).result()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the loopback port now. With SO_REUSEADDR, as the
    servers bind: connections of a process that just stopped (TIME-WAIT) do not hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# A restarted process that then runs this long is well again: its next crash waits 1s again.
HEALTHY_RUN_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Proc:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    # When the supervisor starts it again (set while it is down).
    restart_at: float | None = None
    # Restarted, not yet answering its health check.
    recovering: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        self.process = _spawner.submit(_spawn, self.command, env, self.log).result()
        self.started_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_report(self, lines: int = 15) -> str:
        """Why it exited, from its exit code and its log's last lines: a CI run keeps the
        output, not the log files."""
        code = self.process.poll() if self.process is not None else None
        try:
            tail = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            tail = []
        shown = "".join(f"\n  | {line}" for line in tail)
        return f"{self.name} exited (code {code}); {self.log} ends:{shown}"

    @property
    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def signal(self, sig: int) -> None:
        if self.running and self.process is not None:
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class LocalStack:
    state_dir: Path
    devices: int = 100
    faulty_devices: str = ""
    database_urls: dict[str, str] = field(default_factory=dict)
    preferred_ports: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    nats: NatsServer | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    # Preferred ports that were taken, as (process, preferred port, port used instead).
    moved_ports: list[tuple[str, int, int]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    @property
    def trace_dir(self) -> Path:
        return self.state_dir / "traces"

    @property
    def voucher_key_file(self) -> Path:
        return self.state_dir / "keys" / "voucher-signing-key.pem"

    @property
    def voucher_public_key_file(self) -> Path:
        return public_key_file(self.voucher_key_file)

    def address(self, name: str) -> str:
        return self.procs[name].address

    def choose_port(self, name: str, preferred: int) -> int:
        """The preferred port when it is free (or `preferred_ports` is off: any free port);
        when another process holds it, a free one, recorded in `moved_ports`."""
        if not self.preferred_ports:
            return free_port()
        if port_is_free(preferred):
            return preferred
        port = free_port()
        self.moved_ports.append((name, preferred, port))
        return port

    def plan(self) -> None:
        """Chooses ports and builds every process's command and environment."""
        logs = self.state_dir / "logs"
        nats_port = self.choose_port("nats", NATS_PORT)
        self.nats = NatsServer(
            self.state_dir / "nats", port=nats_port, log_file=logs / "nats.log", spawn=_spawn_nats
        )
        documented = {**SERVICE_PORTS, **SIMULATOR_PORTS}
        ports = {name: self.choose_port(name, p) for name, p in documented.items()}
        common = {
            "ORDERLINE_NATS_URL": self.nats.url,
            "ORDERLINE_TRACE_DIR": str(self.trace_dir),
            "ORDERLINE_LOG_LEVEL": "INFO",
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true",  # the local stack is development
            **self.extra_env,
        }
        for svc in SERVICES:
            env = {
                **common,
                "ORDERLINE_GRPC_PORT": str(ports[svc]),
                "ORDERLINE_DATABASE_URL": self.database_urls.get(
                    svc, f"sqlite+aiosqlite:///{self.state_dir / 'db' / svc}.db"
                ),
            }
            if svc == "archive":
                # Kept in the state directory: checkpoints signed before a restart still
                # verify with the same key.
                env["ORDERLINE_ARCHIVE_SIGNING_KEY_FILE"] = str(
                    ensure_ed25519_key_file(self.state_dir / "keys" / "archive-signing-key.pem")
                )
            if svc == "device-monitor":
                # First-line troubleshooting (a remote reboot of the recoverable faults) goes to
                # the fleet's device agents, as in a deployment (the chart sets it too).
                env["ORDERLINE_DEVICE_AGENT_ADDRESS"] = f"127.0.0.1:{ports['fleet']}"
                # One replica here, under one name: restarted after a crash, it takes its own
                # leader lease back at once instead of waiting for it to expire (as a container
                # restarted in its pod does under the pod's name).
                env.setdefault("ORDERLINE_REPLICA_ID", "device-monitor-local")
            if svc == "provisioning":
                # Kept in the state directory like the archive's, with its public key beside it
                # (voucher-signing-key.pub.pem) for `orderline voucher verify --public-key`.
                env["ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"] = str(
                    ensure_ed25519_key_file(self.voucher_key_file)
                )
                # The demo's operators, certified for every business type (the checklist's
                # operator_certified item checks it; docs/configuration.md), unless the caller
                # says otherwise.
                env.setdefault(
                    "ORDERLINE_PROVISIONING_SEED_CERTIFICATIONS", "provisioning:*,engineer-dev:*"
                )
                env.update(
                    ORDERLINE_INTAKE_ADDRESS=f"127.0.0.1:{ports['intake']}",
                    ORDERLINE_DEVICE_MONITOR_ADDRESS=f"127.0.0.1:{ports['device-monitor']}",
                    ORDERLINE_DEVICE_AGENT_ADDRESS=f"127.0.0.1:{ports['fleet']}",
                    ORDERLINE_GATEWAY_ADDRESS=f"127.0.0.1:{ports['gateway']}",
                )
            module = "orderline_" + svc.replace("-", "_")
            self.procs[svc] = Proc(
                svc, [sys.executable, "-m", module], env, ports[svc], logs / f"{svc}.log"
            )
        self.procs["fleet"] = Proc(
            "fleet",
            [sys.executable, "-m", "orderline_simulators.fleet"],
            {
                **common,
                "ORDERLINE_FLEET_PORT": str(ports["fleet"]),
                "ORDERLINE_FLEET_DEVICES": str(self.devices),
                "ORDERLINE_FLEET_FAULTS": self.faulty_devices,
                # The devices keep their configuration across a restart of the simulator.
                "ORDERLINE_FLEET_STATE_DIR": str(self.state_dir / "fleet"),
                "ORDERLINE_TELEMETRY_TARGET": f"127.0.0.1:{ports['device-monitor']}",
                "ORDERLINE_TELEMETRY_INTERVAL_SECONDS": "0.5",
            },
            ports["fleet"],
            logs / "fleet.log",
        )
        self.procs["gateway"] = Proc(
            "gateway",
            [sys.executable, "-m", "orderline_simulators.gateway"],
            {**common, "ORDERLINE_GATEWAY_PORT": str(ports["gateway"])},
            ports["gateway"],
            logs / "gateway.log",
        )

    def start(self, timeout: float = 60.0) -> LocalStack:
        if not self.procs:
            self.plan()
        assert self.nats is not None
        self.nats.start()
        for proc in self.procs.values():
            proc.start()
        self.wait_healthy(list(self.procs), timeout)
        self.write_stack_file()
        return self

    def write_stack_file(self) -> None:
        assert self.nats is not None
        info = {
            "nats": self.nats.url,
            "trace_dir": str(self.trace_dir.resolve()),
            "addresses": {name: p.address for name, p in self.procs.items()},
            "pids": {name: p.process.pid for name, p in self.procs.items() if p.process},
        }
        (self.state_dir / STACK_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def wait_healthy(
        self, names: list[str], timeout: float = 60.0, *, restart_exited: bool = False
    ) -> int:
        """Waits until every process named answers SERVING. A process that has exited is an
        error, or with `restart_exited` is started again (a restart after a crash can die at
        once, say while its port is not free yet). Returns how many starts that took."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        starts = 0
        while pending:
            for name in sorted(pending):
                proc = self.procs[name]
                if not proc.running:
                    if not restart_exited:
                        raise RuntimeError(proc.exit_report())
                    proc.start()
                    starts += 1
                elif health_check(proc.address):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {timeout}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.1)
        return starts

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        if name == "nats":
            assert self.nats is not None
            self.nats.stop(kill=True)
            return
        proc = self.procs[name]
        proc.signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self, name: str) -> None:
        if name == "nats":
            assert self.nats is not None
            self.nats.start()
            return
        self.procs[name].start()

    # --- supervision -------------------------------------------------------------------

    def supervise(self, report: Callable[[str], None], now: float | None = None) -> None:
        """One pass: a process that exited is started again after a backoff (1s, doubling to
        30s; back to 1s once a restart has run 30s), each step reported in one line."""
        now = time.monotonic() if now is None else now
        nats = self.nats
        if nats is not None and nats.process is not None and nats.process.poll() is not None:
            report(f"nats exited (code {nats.process.poll()}); restarting it (same port, store)")
            nats.start()
            report(f"nats restarted (pid {nats.process.pid if nats.process else '?'})")
        for proc in self.procs.values():
            if self._stopping.is_set():
                return
            if proc.running:
                if proc.recovering and health_check(proc.address):
                    proc.recovering = False
                    report(f"{proc.name} is serving again on {proc.address}")
                if proc.restarts and now - proc.started_at > HEALTHY_RUN_SECONDS:
                    proc.restarts = 0
                continue
            if proc.restart_at is None:
                delay = min(2.0**proc.restarts, MAX_BACKOFF_SECONDS)
                proc.restart_at = now + delay
                report(
                    f"{proc.name} exited (code {proc.exit_code}); restarting in {delay:.0f}s "
                    f"(log: {proc.log})"
                )
            elif now >= proc.restart_at:
                proc.restart_at = None
                proc.restarts += 1
                proc.recovering = True
                proc.start()
                self.write_stack_file()
                pid = proc.process.pid if proc.process else "?"
                report(f"{proc.name} restarted (pid {pid}, restart {proc.restarts})")

    def supervise_in_background(self, report: Callable[[str], None]) -> None:
        """Keeps every process running until `stop()`."""

        def loop() -> None:
            while not self._stopping.wait(0.2):
                self.supervise(report)

        self._supervisor = threading.Thread(target=loop, name="orderline-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, grace: float = 15.0) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        # Clients of the services first, NATS last so the services can drain.
        order = ["fleet", "gateway", *reversed(SERVICES)]
        for name in order:
            if name in self.procs:
                self.procs[name].signal(signal.SIGTERM)
        for name in order:
            if name in self.procs:
                self.procs[name].wait(grace)
        if self.nats is not None:
            self.nats.stop()


def health_check(address: str, service: str = "") -> bool:
    try:
        with open_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
