"""The `orderline` command against the running stack, as a clerk, manager or SRE uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from orderline_cli.stack import LocalStack

pytestmark = pytest.mark.e2e


def orderline(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", *args],
        env={**os.environ, "ORDERLINE_STATE_DIR": str(stack.state_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_clerk_creates_and_follows_an_order_then_traces_it(stack: LocalStack) -> None:
    created = orderline(
        stack, "order", "create", "--type", "iptv", "--name", "王芳",
        "--phone", "+8613800138002", "--address", "上海市浦东新区世纪大道100号",
        "--device", "CPE-0031", "--plan", "iptv-basic", "--request-id", "cli-e2e-1", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    order_id = json.loads(created.stdout)["order"]["id"]

    deadline = time.monotonic() + 90
    order: dict[str, object] = {}
    while time.monotonic() < deadline:
        got = orderline(stack, "order", "get", order_id, "--json")
        assert got.returncode == 0, got.stderr
        order = json.loads(got.stdout)
        if order.get("state") == "ORDER_STATE_COMPLETED" and order.get("dossier_id"):
            break
        time.sleep(0.5)
    assert order.get("state") == "ORDER_STATE_COMPLETED"

    listed = orderline(stack, "order", "list", "--state", "completed", "--json")
    assert order_id in [o["id"] for o in json.loads(listed.stdout)]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        traced = orderline(stack, "trace", order_id, "--json")
        traces = json.loads(traced.stdout) if traced.returncode == 0 else {}
        services = {s["service"] for spans in traces.values() for s in spans}
        if {"intake", "provisioning", "device-monitor", "archive", "reporting"} <= services:
            break
        time.sleep(0.5)
    assert {"intake", "provisioning", "device-monitor", "archive", "reporting"} <= services

    waterfall = orderline(stack, "trace", order_id)
    assert waterfall.returncode == 0
    assert (
        "CreateOrder" in waterfall.stdout and "archive handle order.completed" in waterfall.stdout
    )


def test_bad_order_from_the_cli_names_the_bad_fields(stack: LocalStack) -> None:
    result = orderline(stack, "order", "create", "--type", "iptv", "--phone", "12345")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stdout
    assert "customer.phone" in result.stdout and "customer.name" in result.stdout


def test_manager_reads_the_order_report(stack: LocalStack) -> None:
    created = orderline(
        stack, "order", "create", "--type", "plan_change", "--name", "刘洋",
        "--phone", "+8613800138004", "--device", "CPE-0032", "--plan", "fiber-1000m", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    deadline = time.monotonic() + 60
    report: dict[str, object] = {}
    while time.monotonic() < deadline:
        result = orderline(stack, "report", "orders", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        if int(str(report.get("total_orders", 0))) >= 1:
            break
        time.sleep(0.5)
    assert int(str(report.get("total_orders", 0))) >= 1
    types = {b["business_type"] for b in report["by_business_type"]}  # type: ignore[union-attr]
    assert "plan_change" in types

    table = orderline(stack, "report", "orders")
    assert "plan_change" in table.stdout
