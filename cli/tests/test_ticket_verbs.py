"""`orderline ticket list|get|progress|resolve|close` and `orderline anomaly list` against the
running device-monitor (in this process, on real NATS and SQLite): a device's line fails, a
follow-up report opens a ticket, and the verbs take it to closed, in text and --json, with bad
input refused by the service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest_asyncio

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_device_monitor.bootstrap import build
from orderline_device_monitor.settings import DeviceMonitorSettings
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving

DEVICE = "CPE-0901"
SERVICE = (("authorization", "Bearer dev-service"),)


def reading(**values: object) -> device_pb2.TelemetrySample:
    fields: dict[str, object] = {
        "noise_db": 35.0, "vibration_mm_s": 0.8, "display_ok": True, "key_latency_ms": 60.0,
        "line_error_rate": 0.0005, "line_up": True, "cpu_pct": 20.0, "memory_pct": 45.0,
        "disk_pct": 40.0, "temperature_c": 48.0, "safety_ok": True,
    }  # fmt: skip
    fields.update(values)
    sample = device_pb2.TelemetrySample(device_id=DEVICE, **fields)  # type: ignore[arg-type]
    sample.observed_at.FromDatetime(datetime.now(UTC))
    return sample


@pytest_asyncio.fixture
async def monitor(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[tuple[str, str]]:
    """device-monitor with a line alarm on DEVICE and a reported ticket: (address, ticket id)."""
    service = build(
        DeviceMonitorSettings(
            service_name="device-monitor",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'dm.db'}",
            nats_url=nats_server.url,
            trace_dir=tmp_path / "traces",
            shutdown_grace_seconds=2,
        )
    )
    async with serving(service) as address:
        async with grpc.aio.insecure_channel(address) as channel:

            async def batches() -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
                yield device_pb2.StreamTelemetryRequest(samples=[reading()])
                yield device_pb2.StreamTelemetryRequest(samples=[reading(line_up=False)])

            ingest = device_pb2_grpc.TelemetryIngestServiceStub(channel)
            await ingest.StreamTelemetry(batches(), metadata=SERVICE, timeout=10)
            health = device_pb2_grpc.DeviceHealthServiceStub(channel)
            reply = await health.CreateTicket(
                device_pb2.CreateTicketRequest(
                    device_id=DEVICE, description="no internet | 无法上网", order_id="ORD-9"
                ),
                metadata=SERVICE,
                timeout=5,
            )
        yield address, reply.ticket.id


async def orderline(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orderline_cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERLINE_TOKEN": "dev-maintenance"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_ticket_taken_from_acknowledged_to_closed(monitor: tuple[str, str]) -> None:
    address, ticket_id = monitor
    at = ("--device-monitor", address)
    code, out, err = await orderline("ticket", "list", *at, "--state", "acknowledged")
    assert code == 0, err
    assert ticket_id in out and "acknowledged" in out and "REPORTED" in out

    code, out, err = await orderline("ticket", "close", ticket_id, *at, "--json")
    assert code == 1 and out == ""
    assert json.loads(err)["error"]["code"] == "FAILED_PRECONDITION"

    code, out, err = await orderline("ticket", "progress", ticket_id, *at, "--note", "on site")
    assert code == 0, err
    assert "inProgress" in out and "on site" in out

    code, out, err = await orderline(
        "ticket", "resolve", ticket_id, *at, "--root-cause", "GREMLINS", "--json"
    )
    assert code == 1
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == [
        "root_cause_code",
        "corrective_action_code",
    ]
    code, out, err = await orderline(
        "ticket", "resolve", ticket_id, *at,
        "--root-cause", "LINE_DAMAGED", "--action", "LINE_REPAIRED", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["ticket"]["state"] == "resolved"

    # Four-eyes: the resolver does not confirm the repair; an engineer does.
    code, out, err = await orderline("ticket", "close", ticket_id, *at, "--note", "trust me")
    assert code == 1 and "PERMISSION_DENIED" in err and "four-eyes" in err
    code, out, err = await orderline(
        "ticket", "close", ticket_id, *at, "--note", "link up", "--token", "dev-engineer"
    )
    assert code == 0, err
    assert "closed by engineer-dev" in out and "PERSON_CONFIRMED" in out
    assert "root cause: LINE_DAMAGED" in out

    code, out, err = await orderline("ticket", "get", ticket_id, *at, "--json")
    assert code == 0, err
    ticket = json.loads(out)["ticket"]
    assert ticket["state"] == "closed" and ticket["order_id"] == "ORD-9"
    assert [step["state"] for step in ticket["history"]] == [
        "acknowledged",
        "inProgress",
        "resolved",
        "closed",
    ]
    code, out, err = await orderline("ticket", "get", "0190f0e0-0000-7000-8000-000000000000", *at)
    assert code == 1 and "NOT_FOUND" in err


async def test_anomaly_list_filters(monitor: tuple[str, str]) -> None:
    address, ticket_id = monitor
    at = ("--device-monitor", address)
    code, out, err = await orderline("anomaly", "list", *at, "--category", "line", "--json")
    assert code == 0, err
    [anomaly] = json.loads(out)["anomalies"]
    assert anomaly["device_id"] == DEVICE and anomaly["ticket_id"] == ticket_id
    assert anomaly["category"] == "HEALTH_CATEGORY_LINE" and anomaly["offending_metrics"] == [
        "line_up"
    ]
    code, out, err = await orderline(
        "anomaly", "list", *at, "--model", "default", "--from", "2026-01-01"
    )
    assert code == 0, err
    assert DEVICE in out and "line" in out
    code, out, _ = await orderline("anomaly", "list", *at, "--category", "thermal", "--json")
    assert json.loads(out)["anomalies"] == []
    code, out, err = await orderline(
        "anomaly", "list", *at, "--from", "2026-12-31", "--to", "2026-01-01", "--json"
    )
    assert code == 1
    assert [v["field"] for v in json.loads(err)["error"]["violations"]] == ["first_seen_before"]
    code, _, err = await orderline("anomaly", "list", *at, "--from", "yesterday")
    assert code == 2 and "--from" in err
