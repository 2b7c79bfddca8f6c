"""`orderline order cancel` and `orderline order list`'s filters against a running intake (in
this process, on real NATS and SQLite): a cancellation before provisioning in text and --json, a
retry with the same request id, and refusals as one error (bad reason named by field, past the
point of no return); orders listed by business type and by when they were created."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import grpc
import nats
import pytest_asyncio

from orderline.events.v1 import provisioning_events_pb2 as PE
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings
from orderline_runtime.messaging.envelope import build_envelope

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CLERK = (("authorization", "Bearer dev-clerk"),)


@pytest_asyncio.fixture
async def intake(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[str]:
    service = build(
        IntakeSettings(
            service_name="intake",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            allow_development_tokens=True,
        )
    )
    async with serving(service) as address:
        yield address


async def create(address: str, request_id: str, **overrides: object) -> order_pb2.Order:
    fields: dict[str, object] = {
        "client_request_id": request_id,
        "business_type": "broadband_install",
        "customer": order_pb2.Customer(
            name="王芳",
            phone="+8613800138002",
            identity=order_pb2.Identity(resident_id="11010519491231002X"),
            address=f"上海市浦东新区世纪大道100号{request_id}",
            locale="zh-CN",
        ),
        "device_id": "CPE-0042",
        "plan": "fiber-500m",
        "documents": [order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=1000)],
    }
    fields.update(overrides)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        reply = await stub.CreateOrder(order_pb2.CreateOrderRequest(**fields), metadata=CLERK)
        return reply.order


async def orderline(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orderline_cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERLINE_TOKEN": "dev-clerk"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cancel_before_provisioning_in_text_and_json(intake: str) -> None:
    pending = await create(intake, "cli-c1", documents=[])
    code, out, err = await orderline(
        "order", "cancel", pending.id, "--reason", "CUSTOMER_REQUEST", "--intake", intake
    )
    assert code == 0, err
    assert pending.id in out and "done" in out and "cancelled" in out
    assert "nothing to undo" in out and "无需回退" in out

    order = await create(intake, "cli-c2")
    args = ("order", "cancel", order.id, "--reason", "customer_withdrew", "--request-id", "r-2")
    code, out, err = await orderline(*args, "--intake", intake, "--json")
    assert code == 0, err
    reply = json.loads(out)
    assert reply["created"] is True
    assert reply["cancellation"]["state"] == "inProgress"
    assert reply["cancellation"]["reason_code"] == "CUSTOMER_WITHDREW"
    assert reply["order"]["state"] == "assessingCancellation"
    # The same request again is the same cancellation.
    code, out, err = await orderline(*args, "--intake", intake, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["created"] is False
    assert again["cancellation"]["id"] == reply["cancellation"]["id"]


async def test_refusals_are_one_error(intake: str, nats_server: NatsServer) -> None:
    order = await create(intake, "cli-c3")
    code, out, err = await orderline(
        "order", "cancel", order.id, "--reason", "BORED", "--intake", intake, "--json"
    )
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["reason_code"]

    env = build_envelope(
        "provisioning.service_activated",
        PE.ServiceActivated(order_id=order.id, job_id="j"),
        producer="provisioning",
        order_id=order.id,
    )
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().publish(
        "orderline.provisioning.service_activated",
        env.SerializeToString(),
        headers={"Nats-Msg-Id": env.id},
    )
    await nc.close()

    async def activated() -> bool:
        async with grpc.aio.insecure_channel(intake) as channel:
            got = await order_pb2_grpc.OrderServiceStub(channel).GetOrder(
                order_pb2.GetOrderRequest(order_id=order.id), metadata=CLERK
            )
        return any(m.name == "service_activated" for m in got.order.milestones)

    await eventually(activated, within=15, what="the activation milestone")
    code, out, err = await orderline(
        "order", "cancel", order.id, "--reason", "CUSTOMER_REQUEST", "--intake", intake
    )
    assert code == 1 and out == ""
    assert err.count("FAILED_PRECONDITION") == 1 and "point of no return" in err


async def test_order_list_by_type_and_creation_time(intake: str) -> None:
    first = await create(intake, "cli-l1")
    second = await create(
        intake, "cli-l2", business_type="iptv", plan="iptv-basic", device_id="CPE-0043"
    )
    since = second.created_at.ToDatetime(tzinfo=UTC).isoformat()

    async def listed(*args: str) -> list[str]:
        code, out, err = await orderline("order", "list", *args, "--intake", intake, "--json")
        assert code == 0, err
        return [o["id"] for o in json.loads(out)]

    assert await listed("--type", "iptv") == [second.id]
    assert await listed("--from", since) == [second.id]
    assert await listed("--before", since) == [first.id]
    code, _, err = await orderline("order", "list", "--from", "yesterday", "--intake", intake)
    assert code == 2 and "--from" in err, err
    code, _, err = await orderline(
        "order", "list", "--from", since, "--before", since, "--intake", intake, "--json"
    )
    assert code != 0 and json.loads(err)["error"]["code"] == "INVALID_ARGUMENT", err
