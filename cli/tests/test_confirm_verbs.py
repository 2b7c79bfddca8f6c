"""`orderline job confirm` and `orderline job feedback` against provisioning running in this
process on real NATS and SQLite, its device work done by the real fleet simulator and its
notice sent by the real gateway simulator (separate processes over gRPC); device-monitor's
CheckFitness and intake's GetOrder answered by a small in-test gRPC server. The order's job
completes; the clerk's verbs record the confirmation and the feedback once, in text and
--json, and refuse what does not apply."""

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
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_provisioning.bootstrap import build
from orderline_provisioning.settings import ProvisioningSettings
from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.messaging.envelope import build_envelope

ORDER = "ORD-CLI-CONFIRM"
DEVICE = "CPE-0003"


async def orderline(*args: str, token: str = "dev-clerk") -> tuple[int, str, str]:
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


class Intake(order_pb2_grpc.OrderServiceServicer):
    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        customer = order_pb2.Customer(
            name="王芳",
            phone="+8613800138002",
            locale="en",
            preferred_channel=order_pb2.CONTACT_CHANNEL_PHONE,
        )
        return order_pb2.GetOrderResponse(
            order=order_pb2.Order(
                id=request.order_id, state=order_pb2.ORDER_STATE_IN_PROGRESS, customer=customer
            )
        )


async def simulator(module: str, env: dict[str, str], log: Path) -> tuple[Any, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env={**clean, **env},
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    assert line.startswith("ready on "), f"{module} did not start: {line!r} (see {log})"
    return proc, line.removeprefix("ready on ")


@pytest_asyncio.fixture
async def provisioning(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[str]:
    """Provisioning whose one order completed (activated, the customer notified)."""
    fleet, fleet_address = await simulator(
        "orderline_simulators.fleet",
        {"ORDERLINE_FLEET_PORT": "0", "ORDERLINE_FLEET_DEVICES": "5",
         "ORDERLINE_TELEMETRY_TARGET": ""},
        tmp_path / "fleet.log",
    )  # fmt: skip
    gateway, gateway_address = await simulator(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_GATEWAY_REPORT_DELAY_MS": "100"},
        tmp_path / "gateway.log",
    )
    peers = grpc.aio.server()
    device_pb2_grpc.add_DeviceHealthServiceServicer_to_server(Health(), peers)
    order_pb2_grpc.add_OrderServiceServicer_to_server(Intake(), peers)
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
            device_agent_address=fleet_address,
            gateway_address=gateway_address,
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
                order_id=ORDER, business_type="iptv", device_id=DEVICE, plan="iptv-basic"
            )
            env = build_envelope(
                "order.approved", payload, producer="intake", order_id=ORDER, device_id=DEVICE
            )
            await nc.jetstream().publish(
                "orderline.order.approved",
                env.SerializeToString(),
                headers={"Nats-Msg-Id": env.id},
            )
            await nc.close()
            yield address
    finally:
        await peers.stop(0)
        for proc in (fleet, gateway):
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)


async def test_the_clerk_confirms_and_records_feedback_from_the_cli(provisioning: str) -> None:
    at = ("--provisioning", provisioning)

    # Before the job completed, or whenever: a bad score and a missing channel are named.
    code, _, err = await orderline("job", "feedback", ORDER, *at, "--score", "6", "--json")
    assert code == 1
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert sorted(v["field"] for v in error["violations"]) == ["channel", "score"]
    code, _, err = await orderline("job", "confirm", ORDER, *at, "--channel", "fax", "--json")
    assert code == 1 and json.loads(err)["error"]["violations"][0]["field"] == "channel"

    async def job() -> dict[str, Any]:
        code, out, err = await orderline("job", "get", "--order", ORDER, *at, "--json")
        assert code == 0, err
        return dict(json.loads(out)["job"])

    done = await eventually(
        job, lambda j: j.get("state") == "JOB_STATE_COMPLETED", within=60, what="job completed"
    )
    assert done["step"] == "done"

    code, out, err = await orderline("job", "confirm", ORDER, *at, "--channel", "call")
    assert code == 0, err
    assert f"order {ORDER}" in out and "confirmed by the customer (call)" in out
    assert "recorded by clerk-dev" in out
    code, out, err = await orderline("job", "confirm", ORDER, *at, "--channel", "call", "--json")
    assert code == 0, err
    confirmation = json.loads(out)["confirmation"]
    assert confirmation["order_id"] == ORDER and confirmation["channel"] == "CUSTOMER_CHANNEL_CALL"
    code, _, err = await orderline("job", "confirm", ORDER, *at, "--channel", "visit", "--json")
    assert code == 1 and json.loads(err)["error"]["code"] == "ALREADY_EXISTS"

    code, out, err = await orderline(
        "job", "feedback", ORDER, *at, "--score", "5", "--comment", "fast and tidy",
        "--channel", "call", "--json",
    )  # fmt: skip
    assert code == 0, err
    feedback = json.loads(out)["feedback"]
    assert (feedback["score"], feedback["comment"]) == (5, "fast and tidy")
    code, out, err = await orderline(
        "job", "feedback", ORDER, *at, "--score", "5", "--comment", "fast and tidy",
        "--channel", "call",
    )  # fmt: skip
    assert code == 0, err and "feedback 5/5 (call)" in out
    # An engineer does not record what the customer told the clerk.
    code, _, err = await orderline(
        "job", "feedback", ORDER, *at, "--score", "1", "--channel", "call", "--json",
        token="dev-engineer",
    )  # fmt: skip
    assert code == 1 and json.loads(err)["error"]["code"] == "PERMISSION_DENIED"

    code, out, err = await orderline("job", "get", "--order", ORDER, *at)
    assert code == 0, err
    assert "confirmed by the customer (call)" in out and "feedback 5/5 (call)" in out
