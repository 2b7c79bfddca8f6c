"""A service run as a real process serves Prometheus metrics when ORDERLINE_METRICS_PORT is set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from orderline.order.v1 import order_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import health_check
from orderline_devtools.local import NatsServer, free_port
from orderline_runtime.telemetry_names import (
    OUTBOX_LAG,
    OUTBOX_PUBLISHED,
    prometheus_counter,
    prometheus_histogram,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def intake_with_metrics(tmp_path: Path) -> Iterator[tuple[str, int]]:
    nats = NatsServer(tmp_path / "nats").start()
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ORDERLINE_GRPC_PORT": str(grpc_port),
        "ORDERLINE_METRICS_PORT": str(metrics_port),
        "ORDERLINE_NATS_URL": nats.url,
        "ORDERLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        "ORDERLINE_TRACE_DIR": str(tmp_path / "traces"),
    }
    with open(tmp_path / "intake.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderline_intake"], env=env, stdout=log, stderr=log
        )
    try:
        address = f"127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 30
        while not health_check(address):
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "intake.log"
            ).read_text()
            time.sleep(0.1)
        yield address, metrics_port
    finally:
        proc.terminate()
        proc.wait(15)
        nats.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def test_outbox_and_events_are_counted_on_the_metrics_endpoint(
    intake_with_metrics: tuple[str, int],
) -> None:
    address, port = intake_with_metrics
    with grpc.insecure_channel(address) as channel:
        order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
            demo_request(0, "CPE-0001"), metadata=(("authorization", "Bearer dev-clerk"),)
        )
    deadline = time.monotonic() + 20
    text = scrape(port)
    published_total = prometheus_counter(OUTBOX_PUBLISHED)
    while published_total not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = scrape(port)
    # order.created, order.state_changed and order.approved left through the relay.
    published = [
        line
        for line in text.splitlines()
        if line.startswith(published_total) and not line.startswith("#")
    ]
    assert published and float(published[0].rsplit(" ", 1)[1]) >= 3
    assert prometheus_histogram(OUTBOX_LAG) + "_bucket" in text
