"""A provisioning process killed in the middle of a step resumes that step after a restart,
without doing anything twice; and replicas on one PostgreSQL database never run a job at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orderline_devtools.local import NatsServer, free_port
from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.telemetry_names import JOB_ID, ORDER_ID

STEPS = ["prechecks", "configure", "test", "activate", "notify"]


class Process:
    """`python -m orderline_provisioning` with its settings in the environment."""

    def __init__(self, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.env = env
        self.log = log
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, wait_serving: Any) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orderline_provisioning",
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=log,
            )
        # A generous bound: a loaded machine (CI's two workers) can take long to import and
        # migrate; a process that died is reported at once with its log instead.
        serving = asyncio.ensure_future(
            wait_serving(f"127.0.0.1:{self.env['ORDERLINE_GRPC_PORT']}", within=90)
        )
        exited = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({serving, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            serving.cancel()
            raise AssertionError(f"provisioning exited {exited.result()}: {self.log.read_text()}")
        exited.cancel()
        serving.result()

    async def stop(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            await asyncio.wait_for(self.proc.wait(), 20)


def voucher_key(directory: Path) -> Path:
    """The Ed25519 key the process signs vouchers with (it refuses to start without one)."""
    return ensure_ed25519_key_file(directory / "voucher-key.pem")


def process_env(db_url: str, nats_url: str, peers: str, trace_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
    env.update(
        {
            "ORDERLINE_GRPC_PORT": str(free_port()),
            "ORDERLINE_DATABASE_URL": db_url,
            "ORDERLINE_NATS_URL": nats_url,
            "ORDERLINE_TRACE_DIR": str(trace_dir),
            "ORDERLINE_INTAKE_ADDRESS": peers,
            "ORDERLINE_DEVICE_MONITOR_ADDRESS": peers,
            "ORDERLINE_DEVICE_AGENT_ADDRESS": peers,
            "ORDERLINE_GATEWAY_ADDRESS": peers,
            "ORDERLINE_RETRY_INITIAL_SECONDS": "0.05",
            "ORDERLINE_WORKER_POLL_SECONDS": "0.1",
            "ORDERLINE_JOB_LEASE_SECONDS": "1",
            "ORDERLINE_CALL_TIMEOUT_SECONDS": "30",
            "ORDERLINE_SHUTDOWN_GRACE_SECONDS": "3",
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true",
            "ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE": str(voucher_key(trace_dir.parent / "keys")),
            # The automation operator certified for every type, as the local stack seeds it.
            "ORDERLINE_PROVISIONING_SEED_CERTIFICATIONS": "provisioning:*",
        }
    )
    return env


def spans(trace_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in trace_dir.glob("provisioning-*.jsonl"):
        out += [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


async def test_process_killed_mid_configure_resumes_there_and_applies_once(
    db_url: str,
    nats_server: NatsServer,
    peers: Any,
    bus: Any,
    order_id: str,
    tmp_path: Path,
    wait_serving: Any,
) -> None:
    trace_dir = tmp_path / "traces"
    env = process_env(db_url, nats_server.url, peers.address, trace_dir)
    peers.agent.stall_first_apply = True
    first = Process(env, tmp_path / "first.log", tmp_path)
    await first.start(wait_serving)
    trace_id = await bus.approve(order_id, "CPE-0007")

    # The device applied the configuration; the answer never reaches provisioning.
    await asyncio.wait_for(peers.agent.apply_stalled.wait(), 20)
    await first.stop(signal.SIGKILL)
    job_id = (await bus.wait_for_event(order_id, "provisioning.job_started")).payload.job_id

    # Another order for the same device: the killed job's reservation outlived the crash
    # (it is the job's, not the process's), so this one waits for the resumed job to finish.
    follower = order_id + "-NEXT"
    await bus.approve(follower, "CPE-0007")
    second = Process(env, tmp_path / "second.log", tmp_path)
    await second.start(wait_serving)
    try:
        await bus.wait_for_event(order_id, "provisioning.customer_notified")
        await bus.wait_for_event(follower, "provisioning.customer_notified")
    finally:
        await second.stop(signal.SIGTERM)
    owners = [key.split(":", 1)[0] for _, key in peers.agent.touches]
    assert owners[: owners.count(job_id)] == [job_id] * owners.count(job_id)
    assert len(set(owners)) == 2

    # Resumed at configure: the repeat carried the same key and the device applied once.
    mine = [key for key in peers.agent.apply_calls if key.startswith(job_id)]
    assert mine == [f"{job_id}:configure"] * 2
    assert {k: n for k, n in peers.agent.applies_by_key.items() if k.startswith(job_id)} == {
        f"{job_id}:configure": 1
    }
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.tests_passed",
        "provisioning.service_activated",
        "provisioning.voucher_issued",
        "provisioning.customer_notified",
    ]
    assert [c for c in peers.health.calls if c[1] == order_id] == [
        ("CPE-0007", order_id, "Bearer dev-service")
    ]
    assert len([s for s in peers.gateway.sends if s.idempotency_key.startswith(job_id)]) == 1

    # The restarted process's steps are spans of the order's one trace.
    step_spans = {
        s["name"]: s
        for s in spans(trace_dir)
        if s["name"].startswith("provisioning step ") and s["attributes"].get(ORDER_ID) == order_id
    }
    for step in ("configure", "test", "activate", "notify"):
        span = step_spans[f"provisioning step {step}"]
        assert span["trace_id"] == trace_id
        assert span["attributes"][ORDER_ID] == order_id
        assert span["attributes"][JOB_ID] == job_id


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_replicas_on_postgres_never_run_the_same_job(
    start_provisioning: Any, bus: Any, peers: Any
) -> None:
    await start_provisioning()
    await start_provisioning()
    orders = [f"ORD-REPLICA-{i}" for i in range(8)]
    for i, order in enumerate(orders):
        await bus.approve(order, f"CPE-02{i:02d}")
    for order in orders:
        await bus.wait_for_event(order, "provisioning.customer_notified")

    events = await bus.provisioning_events()
    per_order = Counter((e.order_id, e.type) for e in events)
    assert set(per_order.values()) == {1}
    assert len(per_order) == 7 * len(orders)
    assert all(n == 1 for n in peers.agent.applies_by_key.values())
    assert len(peers.agent.apply_calls) == len(orders)
    assert len(peers.gateway.sends) == len(orders)
