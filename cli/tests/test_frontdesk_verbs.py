"""`orderline cancellation get|list`, `orderline order jeopardy` and `orderline order list
--customer` against a running intake (in this process, on real NATS and SQLite, its clock moved
by the test, never waited for), in text and --json, with refusals as one error; and the
follow-up verbs the issue names are there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest_asyncio

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings

from .test_cancel_verb import CLERK, create, orderline


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


CLOCK = MovableClock()


@pytest_asyncio.fixture
async def intake(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[str]:
    CLOCK.offset = timedelta()
    service = build(
        IntakeSettings(
            service_name="intake",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            allow_development_tokens=True,
        ),
        clock=CLOCK,
        jeopardy_sweep_seconds=0.1,
    )
    async with serving(service) as address:
        yield address


async def test_cancellation_get_and_list_in_text_and_json(intake: str) -> None:
    pending = await create(intake, "cli-f1", documents=[])
    code, out, err = await orderline(
        "order", "cancel", pending.id, "--reason", "CUSTOMER_REQUEST", "--intake", intake, "--json"
    )
    assert code == 0, err
    cancellation_id = json.loads(out)["cancellation"]["id"]

    code, out, err = await orderline("cancellation", "get", cancellation_id, "--intake", intake)
    assert code == 0, err
    assert cancellation_id in out and "done" in out and pending.id in out
    code, out, err = await orderline(
        "cancellation", "get", cancellation_id, "--intake", intake, "--json"
    )
    assert code == 0, err
    got = json.loads(out)["cancellation"]
    assert (got["id"], got["state"], got["order_id"]) == (cancellation_id, "done", pending.id)

    code, out, err = await orderline("cancellation", "list", "--intake", intake)
    assert code == 0, err
    assert cancellation_id in out and "done" in out
    code, out, err = await orderline(
        "cancellation", "list", "--order", pending.id, "--intake", intake, "--json"
    )
    assert code == 0, err
    listed = json.loads(out)
    assert [c["id"] for c in listed["cancellations"]] == [cancellation_id]
    assert listed["cancellations"][0]["state"] == "done"

    code, out, err = await orderline(
        "cancellation", "get", "no-such-cancellation", "--intake", intake, "--json"
    )
    assert code == 1 and out == ""
    assert json.loads(err)["error"]["code"] == "NOT_FOUND"


async def test_order_jeopardy_lists_late_orders_oldest_due_first(intake: str) -> None:
    queued = await create(
        intake,
        "cli-f2",
        customer=order_pb2.Customer(
            name="John Smith",
            phone="+447700900123",
            identity=order_pb2.Identity(
                passport=order_pb2.Passport(number="K12345678", issuing_country="GBR")
            ),
            address="上海市浦东新区世纪大道100号",
            locale="en",
        ),
    )
    assert queued.state == order_pb2.ORDER_STATE_ACKNOWLEDGED
    code, out, err = await orderline("order", "jeopardy", "--intake", intake, "--json")
    assert code == 0, err
    assert json.loads(out)["entries"] == []

    CLOCK.offset = timedelta(hours=5)  # review_approved was due 4 hours after creation

    async def listed() -> list[str]:
        async with grpc.aio.insecure_channel(intake) as channel:
            reply = await order_pb2_grpc.OrderServiceStub(channel).ListJeopardy(
                order_pb2.ListJeopardyRequest(), metadata=CLERK
            )
        return [e.order.id for e in reply.entries]

    await eventually(listed, lambda ids: ids == [queued.id], 15, "in jeopardy")
    code, out, err = await orderline("order", "jeopardy", "--intake", intake)
    assert code == 0, err
    assert queued.id in out and "review_approved" in out
    code, out, err = await orderline("order", "jeopardy", "--intake", intake, "--json")
    assert code == 0, err
    [entry] = json.loads(out)["entries"]
    assert (entry["order"]["id"], entry["milestone"]) == (queued.id, "review_approved")
    assert entry["order"]["state"] == "acknowledged" and entry["order"]["in_jeopardy"] is True
    # The order itself shows its due times and which milestone fell into jeopardy.
    code, out, err = await orderline("order", "get", queued.id, "--intake", intake)
    assert code == 0, err
    assert "due  (IN JEOPARDY)" in out
    (late,) = [line for line in out.splitlines() if line.startswith("review_approved")]
    assert "jeopardy since" in late

    code, out, err = await orderline(
        "order", "jeopardy", "--page-size", "600", "--intake", intake, "--json"
    )
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["page_size"]


async def test_order_list_by_customer_phone_or_identity_number(intake: str) -> None:
    mine = await create(intake, "cli-f3")
    code, out, err = await orderline(
        "order", "list", "--customer", "138 0013 8002", "--intake", intake, "--json"
    )
    assert code == 0, err
    assert [o["id"] for o in json.loads(out)] == [mine.id]
    code, out, err = await orderline(
        "order", "list", "--customer", "11010519491231002x", "--intake", intake
    )
    assert code == 0, err
    assert mine.id in out
    code, out, err = await orderline(
        "order", "list", "--customer", "+8613700000000", "--intake", intake, "--json"
    )
    assert code == 0, err
    assert json.loads(out) == []
    code, out, err = await orderline(
        "order", "list", "--customer", "9" * 65, "--intake", intake, "--json"
    )
    assert code == 1
    assert [v["field"] for v in json.loads(err)["error"]["violations"]] == ["customer"]


async def test_the_follow_up_verbs_are_there() -> None:
    for verb in ("list", "record"):
        code, out, err = await orderline("followup", verb, "--help")
        assert code == 0, err
        assert "--json" in out
