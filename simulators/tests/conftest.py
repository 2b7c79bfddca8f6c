"""Starts the simulators as real subprocesses and talks to them over real gRPC."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class SimProcess:
    """A simulator running as a child process."""

    module: str
    proc: asyncio.subprocess.Process
    address: str
    stderr_path: Path

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other stderr lines are skipped)."""
        entries = []
        for line in self.stderr_path.read_text().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError(f"{self.module} did not stop on signal {signum}") from None
        assert self.proc.returncode is not None
        return self.proc.returncode


def _read(path: Path) -> str:
    return path.read_text()


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test's own ORDERLINE_* settings only: the developer's shell must not leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    env.update(extra)
    return env


async def start_simulator(module: str, env: Mapping[str, str], stderr_path: Path) -> SimProcess:
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=clean_env(env),
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{module} never said ready:\n{_read(stderr_path)}") from None
    text = line.decode().strip()
    if not text.startswith("ready on "):
        await proc.wait()
        raise AssertionError(f"{module} failed to start ({text!r}):\n{_read(stderr_path)}")
    return SimProcess(module, proc, text.removeprefix("ready on "), stderr_path)


Spawn = Callable[[str, Mapping[str, str]], Awaitable[SimProcess]]


@pytest_asyncio.fixture(loop_scope="session")
async def spawn(tmp_path: Path) -> AsyncIterator[Spawn]:
    """Starts simulators for one test; each must stop cleanly (exit 0) on SIGTERM afterwards."""
    started: list[SimProcess] = []

    async def _spawn(module: str, env: Mapping[str, str]) -> SimProcess:
        path = tmp_path / f"{module.rsplit('.', 1)[-1]}-{len(started)}.stderr"
        sim = await start_simulator(module, env, path)
        started.append(sim)
        return sim

    yield _spawn
    for sim in started:
        code = await sim.stop()
        assert code == 0, f"{sim.module} exited {code}:\n{sim.stderr()}"


@pytest.fixture
def start_unchecked() -> Callable[[str, Mapping[str, str], Path], Awaitable[SimProcess]]:
    """`start_simulator` itself, for a test that kills its process (no clean exit to check);
    the test kills what it starts."""
    return start_simulator


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim")


FLEET_MODULE = "orderline_simulators.fleet"
GATEWAY_MODULE = "orderline_simulators.gateway"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet(module_tmp: Path) -> AsyncIterator[SimProcess]:
    """One fleet of 20 devices for a module's tests (no telemetry streaming)."""
    sim = await start_simulator(
        FLEET_MODULE,
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": "20",
            "ORDERLINE_FLEET_FAULTS": "CPE-0007:thermal, CPE-0013:line",
            "ORDERLINE_TELEMETRY_TARGET": "",
        },
        module_tmp / "fleet.stderr",
    )
    yield sim
    assert await sim.stop() == 0, sim.stderr()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet_channel(fleet: SimProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        yield channel


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(module_tmp: Path) -> AsyncIterator[SimProcess]:
    """The gateway as the local stack runs it: the development tokens accepted (dev-service is
    the services' own)."""
    sim = await start_simulator(
        GATEWAY_MODULE,
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true"},
        module_tmp / "gateway.stderr",
    )
    yield sim
    assert await sim.stop() == 0, sim.stderr()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway_channel(gateway: SimProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        yield channel
