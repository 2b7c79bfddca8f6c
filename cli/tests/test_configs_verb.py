"""`orderline job configs DEVICE_ID` against provisioning running in this process on real NATS
and SQLite, its device work done by the real fleet simulator (a separate process over gRPC)
whose CPE-0012 has a damaged line: the order's job applies its configuration and one
adjustment, still fails its performance test and waits in the fallout queue; an engineer rolls
it back. The device's history lists the three changes newest first, the two the rollback undid
marked so, in text and --json; a clerk is refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest_asyncio

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.events.v1 import order_events_pb2
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_provisioning.bootstrap import build
from orderline_provisioning.settings import ProvisioningSettings
from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.messaging.envelope import build_envelope

ORDER = "ORD-CLI-CONFIGS"
DEVICE = "CPE-0012"


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


class Health(device_pb2_grpc.DeviceHealthServiceServicer):
    async def CheckFitness(
        self, request: device_pb2.CheckFitnessRequest, context: Any
    ) -> device_pb2.CheckFitnessResponse:
        health = device_pb2.DeviceHealth(
            device_id=request.device_id, state=device_pb2.HEALTH_STATE_GOOD
        )
        return device_pb2.CheckFitnessResponse(fit=True, health=health)


@pytest_asyncio.fixture
async def provisioning(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[str]:
    """Provisioning with one approved order for the damaged device."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    env = {
        **clean,
        "ORDERLINE_FLEET_PORT": "0",
        "ORDERLINE_FLEET_DEVICES": "20",
        "ORDERLINE_TELEMETRY_TARGET": "",
        "ORDERLINE_FLEET_FAULTS": f"{DEVICE}:line_damaged",
    }
    log = tmp_path / "fleet.log"
    with log.open("wb") as stderr:
        fleet = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orderline_simulators.fleet", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert fleet.stdout is not None
    line = (await asyncio.wait_for(fleet.stdout.readline(), 30)).decode().strip()
    assert line.startswith("ready on "), f"fleet did not start: {line!r} (see {log})"
    peers = grpc.aio.server()
    device_pb2_grpc.add_DeviceHealthServiceServicer_to_server(Health(), peers)
    peers_address = f"127.0.0.1:{peers.add_insecure_port('127.0.0.1:0')}"
    await peers.start()
    service = build(
        ProvisioningSettings(
            service_name="provisioning",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'prov.db'}",
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            provisioning_voucher_key_file=ensure_ed25519_key_file(tmp_path / "key.pem"),
            intake_address=peers_address,
            device_monitor_address=peers_address,
            device_agent_address=line.removeprefix("ready on "),
            gateway_address=peers_address,
            retry_initial_seconds=0.05,
            retry_max_seconds=0.2,
            worker_poll_seconds=0.1,
            call_timeout_seconds=2,
            shutdown_grace_seconds=2,
            provisioning_seed_certifications="provisioning:*",
        )
    )
    try:
        async with serving(service) as address:
            nc = await nats.connect(nats_server.url)
            payload = order_events_pb2.OrderApproved(
                order_id=ORDER, business_type="broadband_install", device_id=DEVICE, plan="300M"
            )
            env_ = build_envelope(
                "order.approved", payload, producer="intake", order_id=ORDER, device_id=DEVICE
            )
            await nc.jetstream().publish(
                "orderline.order.approved",
                env_.SerializeToString(),
                headers={"Nats-Msg-Id": env_.id},
            )
            await nc.close()
            yield address
    finally:
        await peers.stop(0)
        fleet.send_signal(signal.SIGTERM)
        await asyncio.wait_for(fleet.wait(), 15)


async def test_a_devices_configuration_history_from_the_cli(provisioning: str) -> None:
    at = ("--provisioning", provisioning)

    async def job() -> dict[str, Any]:
        code, out, err = await orderline("job", "get", "--order", ORDER, *at, "--json")
        assert code == 0, err
        return dict(json.loads(out)["job"])

    held = await eventually(
        job, lambda j: j.get("reason") == "TESTS_FAILED", within=60, what="tests failed"
    )
    job_id = str(held["id"])
    code, _, err = await orderline("fallout", "rollback", job_id, *at)
    assert code == 0, err

    code, out, err = await orderline("job", "configs", DEVICE, *at, "--json")
    assert code == 0, err
    changes = json.loads(out)["configurations"]
    assert [(c["operation"], c["idempotency_key"]) for c in changes] == [
        ("rollback", f"{job_id}:rollback"),
        ("adjust", f"{job_id}:adjust:1"),
        ("apply", f"{job_id}:configure"),
    ]
    # The device's versions: factory 1, configured 2, adjusted 3, back to 1.
    assert [(c["previous_version"], c["config_version"]) for c in changes] == [
        (3, 1),
        (2, 3),
        (1, 2),
    ]
    assert [c.get("rolled_back", False) for c in changes] == [False, True, True]
    assert all(c["order_id"] == ORDER and c["job_id"] == job_id for c in changes[1:])
    assert changes[1]["settings"]["line.profile"] == "robust"

    code, out, err = await orderline("job", "configs", DEVICE, *at)
    assert code == 0, err
    assert "v3 -> v1" in out and "v1 -> v2" in out and "v2 -> v3" in out
    assert out.count(f"rolled back ({job_id}:rollback)") == 2
    assert "line.profile=robust" in out
    code, out, err = await orderline("job", "configs", "CPE-0013", *at)
    assert code == 0, err
    assert "no configuration recorded for device CPE-0013" in out

    # One a page: the next page's token is printed.
    code, out, err = await orderline("job", "configs", DEVICE, *at, "--page-size", "1")
    assert code == 0, err and "more: --page-token" in out
    code, _, err = await orderline("job", "configs", DEVICE, *at, "--json", token="dev-clerk")
    assert code == 1 and json.loads(err)["error"]["code"] == "PERMISSION_DENIED"
