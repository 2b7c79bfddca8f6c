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

import grpc
import pytest
import pytest_asyncio

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
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


class WithheldAdjustment(agent_pb2_grpc.DeviceAgentServiceServicer):
    """Between provisioning and the real fleet simulator: every call passes through, but the
    answer to the first adjustment is withheld once the fleet has applied it, so the process
    can be killed after the device changed and before it tests again."""

    def __init__(self, fleet: str) -> None:
        self.channel = grpc.aio.insecure_channel(fleet)
        self.fleet = agent_pb2_grpc.DeviceAgentServiceStub(self.channel)
        self.adjusted = asyncio.Event()

    async def _pass(self, method: str, request: Any, context: Any) -> Any:
        try:
            return await getattr(self.fleet, method)(request)
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "")

    async def GetDeviceInfo(self, request: Any, context: Any) -> Any:
        return await self._pass("GetDeviceInfo", request, context)

    async def ApplyConfig(self, request: Any, context: Any) -> Any:
        reply = await self._pass("ApplyConfig", request, context)
        if ":adjust:" in request.idempotency_key and not self.adjusted.is_set():
            self.adjusted.set()
            await asyncio.Event().wait()
        return reply

    async def RollbackConfig(self, request: Any, context: Any) -> Any:
        return await self._pass("RollbackConfig", request, context)

    async def RunTest(self, request: Any, context: Any) -> Any:
        return await self._pass("RunTest", request, context)

    async def RunTests(self, request: Any, context: Any) -> Any:
        return await self._pass("RunTests", request, context)

    async def ActivateService(self, request: Any, context: Any) -> Any:
        return await self._pass("ActivateService", request, context)

    async def DeactivateService(self, request: Any, context: Any) -> Any:
        return await self._pass("DeactivateService", request, context)


@pytest_asyncio.fixture
async def fleet(simulator_processes: Any) -> str:
    """The fleet simulator; CPE-0009's line is noisy: its performance test fails until the
    adjustment loop sets the robust line profile."""
    return str(await simulator_processes.fleet(20, ["CPE-0009:line_noise"]))


async def test_process_killed_mid_adjustment_resumes_with_one_adjustment_recorded(
    db_url: str,
    nats_server: NatsServer,
    peers: Any,
    bus: Any,
    fleet: str,
    tmp_path: Path,
    wait_serving: Any,
) -> None:
    order_id = "ORD-RESTART-ADJUST"
    device = "CPE-0009"
    withheld = WithheldAdjustment(fleet)
    server = grpc.aio.server()
    agent_pb2_grpc.add_DeviceAgentServiceServicer_to_server(withheld, server)
    agent_address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    env = process_env(db_url, nats_server.url, peers.address, tmp_path / "traces")
    env["ORDERLINE_DEVICE_AGENT_ADDRESS"] = agent_address
    first = Process(env, tmp_path / "first.log", tmp_path)
    await first.start(wait_serving)
    second = Process(env, tmp_path / "second.log", tmp_path)
    try:
        await bus.approve(order_id, device)
        # The performance test failed, the device applied the adjustment; the answer never
        # reaches provisioning, which is killed before it tests again.
        await asyncio.wait_for(withheld.adjusted.wait(), 60)
        await first.stop(signal.SIGKILL)
        job_id = (await bus.wait_for_event(order_id, "provisioning.job_started")).payload.job_id

        await second.start(wait_serving)
        await bus.wait_for_event(order_id, "provisioning.customer_notified", within=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{env['ORDERLINE_GRPC_PORT']}") as channel:
            stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
            job = (
                await stub.GetJob(
                    pb.GetJobRequest(job_id=job_id),
                    metadata=(("authorization", "Bearer dev-engineer"),),
                )
            ).job
    finally:
        await second.stop(signal.SIGTERM)
        await server.stop(0)
        await withheld.channel.close()

    # The device changed once per key: one configuration, one adjustment.
    async with grpc.aio.insecure_channel(fleet) as channel:
        agent = agent_pb2_grpc.DeviceAgentServiceStub(channel)
        counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id=device))
        info = (await agent.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(device_id=device))).info
    changes = {k: n for k, n in counters.applies_by_key.items() if ":activate" not in k}
    assert changes == {f"{job_id}:configure": 1, f"{job_id}:adjust:1": 1}
    # And the job recorded exactly what the device carries: the adjustment is in the history
    # and the job's version is the device's.
    assert job.state == pb.JOB_STATE_COMPLETED
    assert [(c.operation, c.idempotency_key) for c in job.config_changes] == [
        ("apply", f"{job_id}:configure"),
        ("adjust", f"{job_id}:adjust:1"),
    ]
    assert job.config_changes[1].settings["line.profile"] == "robust"
    assert job.config_version == info.config_version == job.config_changes[1].config_version
    # Round 1 failed on performance and was adjusted; round 2 passed.
    performance = [r for r in job.test_runs if r.kind == "performance"]
    assert [(r.round, r.passed) for r in performance] == [(1, False), (2, True)]
    assert performance[0].adjustment["line.profile"] == "robust"
    assert all(r.passed and r.round == 2 for r in job.test_results)
    # The adjustment told once, though the device was asked twice.
    assert [e.type for e in await bus.provisioning_events(order_id)] == [
        "provisioning.job_started",
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.adjustment_applied",
        "provisioning.tests_passed",
        "provisioning.service_activated",
        "provisioning.voucher_issued",
        "provisioning.customer_notified",
    ]
