"""`orderline job get|list` and `orderline fallout list|retry|skip|rollback|abort` against
provisioning running in this process on real NATS and SQLite. Its peers are unreachable, so an
approved order's job stops at its checklist (device-monitor and the agent do not answer) and
waits in the fallout queue; the verbs list it, retry it, refuse what does not apply, roll it
back (nothing to undo) and abort it, in text and --json."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio

from orderline.events.v1 import order_events_pb2
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_provisioning.bootstrap import build
from orderline_provisioning.settings import ProvisioningSettings
from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.messaging.envelope import build_envelope

ORDER = "ORD-CLI-FALLOUT"


async def orderline(*args: str, token: str = "dev-engineer") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orderline_cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERLINE_TOKEN": token},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest_asyncio.fixture
async def provisioning(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[str]:
    """Provisioning with an approved order whose job waits in the fallout queue."""
    nowhere = f"127.0.0.1:{free_port()}"
    service = build(
        ProvisioningSettings(
            service_name="provisioning",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'prov.db'}",
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            provisioning_voucher_key_file=ensure_ed25519_key_file(tmp_path / "key.pem"),
            intake_address=nowhere,
            device_monitor_address=nowhere,
            device_agent_address=nowhere,
            gateway_address=nowhere,
            prechecks_wait_seconds=0.3,
            retry_initial_seconds=0.05,
            retry_max_seconds=0.1,
            worker_poll_seconds=0.1,
            call_timeout_seconds=1,
            shutdown_grace_seconds=2,
            provisioning_seed_certifications="provisioning:*",
        )
    )
    async with serving(service) as address:
        nc = await nats.connect(nats_server.url)
        payload = order_events_pb2.OrderApproved(
            order_id=ORDER, business_type="broadband_install", device_id="CPE-0042", plan="300M"
        )
        env = build_envelope(
            "order.approved", payload, producer="intake", order_id=ORDER, device_id="CPE-0042"
        )
        await nc.jetstream().publish(
            "orderline.order.approved", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )
        await nc.close()
        yield address


async def in_fallout(address: str) -> dict[str, object]:
    async def listed() -> list[dict[str, object]]:
        code, out, err = await orderline("fallout", "list", "--provisioning", address, "--json")
        assert code == 0, err
        return list(json.loads(out)["entries"])

    entries = await eventually(listed, within=30, what="the job in the fallout queue")
    [entry] = entries
    return entry


async def test_fallout_verbs_against_a_running_provisioning(provisioning: str) -> None:
    at = ("--provisioning", provisioning)
    entry = await in_fallout(provisioning)
    job = entry["job"]
    assert isinstance(job, dict)
    job_id = str(job["id"])
    assert entry["reason"] in ("DEVICE_AGENT_UNAVAILABLE", "DEVICE_MONITOR_UNAVAILABLE")
    assert entry["actions"] == ["retry", "abort"]
    assert isinstance(entry["age_seconds"], int)

    code, out, err = await orderline("fallout", "list", *at, "--lang", "zh-CN")
    assert code == 0, err
    assert job_id in out and "retry,abort" in out and "无响应" in out

    code, out, err = await orderline("job", "get", "--order", ORDER, *at)
    assert code == 0, err
    assert f"job {job_id}" in out and "held at prechecks" in out and "fallout queue since" in out
    code, out, err = await orderline("job", "list", *at, "--state", "held", "--json")
    assert code == 0, err
    assert [j["id"] for j in json.loads(out)["jobs"]] == [job_id]
    code, out, err = await orderline("job", "list", *at, "--state", "sleeping", "--json")
    assert code == 1 and json.loads(err)["error"]["violations"][0]["field"] == "state"

    # A clerk may not act; a skip needs a reason, and there is no failed test to skip.
    code, _, err = await orderline("fallout", "retry", job_id, *at, "--json", token="dev-clerk")
    assert code == 1 and json.loads(err)["error"]["code"] == "PERMISSION_DENIED"
    code, _, err = await orderline("fallout", "skip", job_id, "security", *at, "--json")
    assert code == 1
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["reason"]
    code, _, err = await orderline(
        "fallout", "skip", job_id, "security", *at, "--reason", "n/a", "--json"
    )
    assert code == 1 and json.loads(err)["error"]["code"] == "FAILED_PRECONDITION"

    # Retried: it runs its checklist again and, the peers still away, comes back.
    code, out, err = await orderline("fallout", "retry", job_id, *at)
    assert code == 0, err
    assert f"retried job {job_id}" in out
    again = await in_fallout(provisioning)
    assert again["job"]["fallout_retries"] == 1  # type: ignore[index]

    # Rolled back: it never touched the device, nothing to undo, still in the queue.
    code, out, err = await orderline("fallout", "rollback", job_id, *at, "--json")
    assert code == 0, err
    assert json.loads(out)["job"]["state"] == "JOB_STATE_HELD"

    code, out, err = await orderline(
        "fallout", "abort", job_id, *at, "--reason", "device never delivered"
    )
    assert code == 0, err
    assert "aborted job" in out and "failed" in out and "FALLOUT_ABORTED" in out
    code, out, err = await orderline("fallout", "list", *at, "--json")
    assert code == 0 and json.loads(out)["entries"] == []
    code, _, err = await orderline("fallout", "abort", job_id, *at, "--reason", "again")
    assert code == 1 and "FAILED_PRECONDITION" in err
    code, _, err = await orderline("job", "get", "nope", *at)
    assert code == 1 and "NOT_FOUND" in err
