"""The `orderline` command against the running stack, as a clerk, manager or SRE uses it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from orderline_cli.stack import LocalStack
from orderline_devtools.waiting import wait_until

pytestmark = pytest.mark.e2e

FIVE = {"intake", "provisioning", "device-monitor", "archive", "reporting"}


def orderline(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", *args],
        env={**os.environ, "ORDERLINE_STATE_DIR": str(stack.state_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_table(text: str, *headers: str) -> list[str]:
    """Every line fits 100 columns and the first names the columns."""
    lines = text.rstrip("\n").splitlines()
    assert lines, "no output"
    too_wide = [line for line in lines if cell_len(line) > 100]
    assert not too_wide, too_wide
    assert lines[0].split() == list(headers), lines[0]
    return lines


def test_clerk_creates_and_follows_an_order_then_traces_it(stack: LocalStack) -> None:
    created = orderline(
        stack, "order", "create", "--type", "iptv", "--name", "王芳",
        "--phone", "+8613800138002", "--address", "上海市浦东新区世纪大道100号",
        "--device", "CPE-0031", "--plan", "iptv-basic", "--request-id", "cli-e2e-1", "--json",
    )  # fmt: skip
    order_id = as_json(created)["order"]["id"]  # type: ignore[index]

    def archived() -> dict[str, object] | None:
        order = as_json(orderline(stack, "order", "get", order_id, "--json"))
        assert isinstance(order, dict)
        return order if order["state"] == "completed" and order["dossier_id"] else None

    order = wait_until("the order to be completed and archived", archived, 90)
    # The same state names as the text output; no protobuf enum names.
    history = order["history"]
    assert isinstance(history, list)
    assert [h["to_state"] for h in history] == ["acknowledged", "inProgress", "completed"]

    listed = as_json(orderline(stack, "order", "list", "--state", "completed", "--json"))
    assert order_id in [o["id"] for o in listed]  # type: ignore[union-attr]

    def traced() -> dict[str, list[dict[str, object]]] | None:
        traces = as_json(orderline(stack, "trace", order_id, "--json"))
        assert isinstance(traces, dict)
        services = {s["service"] for spans in traces.values() for s in spans}
        return traces if services >= FIVE else None

    traces = wait_until("spans of all five services in the order's traces", traced, 30)
    # The order was read above many times: those reads are not among the order's traces.
    for spans in traces.values():
        ids = {s["span_id"] for s in spans}
        roots = {s["name"] for s in spans if s["parent_span_id"] not in ids}
        assert "/orderline.order.v1.OrderService/GetOrder" not in roots, roots

    waterfall = orderline(stack, "trace", order_id)
    assert waterfall.returncode == 0, waterfall.stderr
    assert "/orderline.order.v1.OrderService/CreateOrder " in waterfall.stdout
    assert "/orderline.device.v1.DeviceHealthService/CheckFitness " in waterfall.stdout
    assert "archive handle order.completed" in waterfall.stdout
    assert "…" not in waterfall.stdout
    roots = [line.split()[0] for line in waterfall.stdout.splitlines() if line.startswith("/")]
    assert "/orderline.order.v1.OrderService/CreateOrder" in roots
    assert "/orderline.order.v1.OrderService/GetOrder" not in roots


def test_an_order_s_history_starts_with_its_recording(stack: LocalStack, tmp_path: Path) -> None:
    identity_copy = tmp_path / "id.pdf"
    identity_copy.write_bytes(b"%PDF-1.4 identity copy")
    created = orderline(
        stack, "order", "create", "--type", "fixed_line", "--name", "张伟",
        "--phone", "+8613800138001", "--id-number", "11010519491231002X",
        "--address", "北京市朝阳区建国路88号", "--device", "CPE-0033", "--plan", "voice-unlimited",
        "--document", f"identity_copy={identity_copy}", "--json",
    )  # fmt: skip
    order_id = as_json(created)["order"]["id"]  # type: ignore[index]
    shown = orderline(stack, "order", "get", order_id)
    assert shown.returncode == 0, shown.stderr
    assert_table(shown.stdout.split("\n\n")[0], "order", "state", "type", "device", "milestones")
    history = assert_table(shown.stdout.split("\n\n")[1], "history")
    assert history[1].split() == ["at", "change", "by", "reason"]
    assert "recorded as acknowledged" in history[2]
    assert "acknowledged → acknowledged" not in shown.stdout


def test_bad_order_from_the_cli_names_the_bad_fields_once(stack: LocalStack) -> None:
    result = orderline(stack, "order", "create", "--type", "iptv", "--phone", "12345")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("INVALID_ARGUMENT") == 1, result.stderr
    assert "customer.phone" in result.stderr and "customer.name" in result.stderr

    result = orderline(stack, "order", "create", "--type", "iptv", "--phone", "12345", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    error = json.loads(line)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    fields = {v["field"] for v in error["violations"]}
    assert {"customer.phone", "customer.name"} <= fields


def test_manager_reads_the_order_report(stack: LocalStack) -> None:
    created = orderline(
        stack, "order", "create", "--type", "plan_change", "--name", "刘洋",
        "--phone", "+8613800138004", "--device", "CPE-0032", "--plan", "fiber-1000m", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    def counted() -> dict[str, object] | None:
        report = as_json(orderline(stack, "report", "orders", "--json"))
        assert isinstance(report, dict)
        return report if report["total_orders"] >= 1 else None

    report = wait_until("reporting to count an order", counted, 60)
    # Numbers are numbers, states are the TMF641 names the text output shows.
    assert isinstance(report["total_orders"], int) and isinstance(report["dossiers_sealed"], int)
    states = {s["state"] for s in report["by_state"]}  # type: ignore[union-attr]
    assert "inProgress" in states
    types = {b["business_type"] for b in report["by_business_type"]}  # type: ignore[union-attr]
    assert "plan_change" in types

    text = orderline(stack, "report", "orders")
    assert text.returncode == 0, text.stderr
    summary, by_period = text.stdout.split("\n\n")[:2]
    assert summary.splitlines()[0] == "Orders by period, type and state"
    assert_table("\n".join(summary.splitlines()[1:]), "Figure", "Value")
    rows = assert_table(
        "\n".join(by_period.splitlines()[1:]), "Period", "Business", "type", "State", "Orders"
    )
    # Labels are the catalogue's English names, as a manager reads them.
    assert any("Mobile plan change" in row for row in rows[1:]), rows


def test_order_list_is_a_table_that_fits_100_columns(stack: LocalStack) -> None:
    listed = orderline(stack, "order", "list")
    assert listed.returncode == 0, listed.stderr
    rows = assert_table(listed.stdout, "order", "state", "type", "device", "milestones")
    ids = [o["id"] for o in as_json(orderline(stack, "order", "list", "--json"))]  # type: ignore[union-attr]
    assert [row.split()[0] for row in rows[1:]] == ids  # whole ids, to copy


@pytest.mark.parametrize("service", sorted(FIVE))
def test_a_service_with_a_missing_tokens_file_exits_with_one_line(service: str) -> None:
    module = "orderline_" + service.replace("-", "_")
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={
            **os.environ,
            "ORDERLINE_AUTH_TOKENS_FILE": "/nonexistent",
            "ORDERLINE_GRPC_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{service}: invalid configuration: ORDERLINE_AUTH_TOKENS_FILE: no such file: /nonexistent"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("ORDERLINE_AUTH_TOKENS_FILE", "not json", "is not JSON"),
        ("ORDERLINE_DATABASE_URL", "nonsense://x", "use sqlite+aiosqlite:///"),
    ],
)
def test_a_setting_with_a_wrong_value_stops_a_service_with_one_line(
    tmp_path: Path, variable: str, value: str, problem: str
) -> None:
    if variable.endswith("_FILE"):
        (tmp_path / "tokens.json").write_text(value)
        value = str(tmp_path / "tokens.json")
    result = subprocess.run(
        [sys.executable, "-m", "orderline_intake"],
        env={
            **os.environ,
            "ORDERLINE_GRPC_PORT": "0",
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true",
            "ORDERLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/intake.db",
        }
        | {variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("intake: invalid configuration: ") and variable in line, line
    assert problem in line, line


def test_the_catalogue_and_the_archive_log_from_the_cli(stack: LocalStack, tmp_path: Path) -> None:
    types = as_json(orderline(stack, "catalogue", "--json"))
    ids = {t["id"] for t in types["business_types"]}  # type: ignore[index]
    assert {"broadband_install", "relocation", "termination"} <= ids
    shown = orderline(stack, "catalogue")
    assert shown.returncode == 0 and "宽带" in shown.stdout

    checkpoint = as_json(orderline(stack, "dossier", "checkpoint", "--json"))
    assert checkpoint["verifier_key"].startswith("orderline/archive+")  # type: ignore[index]
    note = orderline(stack, "dossier", "checkpoint")
    assert note.returncode == 0 and note.stdout.startswith("orderline/archive\n")

    missing = orderline(stack, "dossier", "prove", "no-such-order", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stderr)["error"]["code"] == "NOT_FOUND"
    missing = orderline(stack, "dossier", "document", "no-such-order", "order.json", "--json")
    assert json.loads(missing.stderr)["error"]["code"] == "NOT_FOUND"
    bad = orderline(stack, "dossier", "consistency", "0", "--json")
    assert json.loads(bad.stderr)["error"]["code"] == "INVALID_ARGUMENT"


def test_a_voucher_from_the_cli_verifies_offline_and_a_changed_one_does_not(
    stack: LocalStack, tmp_path: Path
) -> None:
    created = orderline(
        stack, "order", "create", "--type", "iptv", "--name", "李娜",
        "--phone", "+8613800138005", "--address", "上海市浦东新区世纪大道200号",
        "--device", "CPE-0033", "--plan", "iptv-basic", "--request-id", "cli-voucher-1", "--json",
    )  # fmt: skip
    order_id = as_json(created)["order"]["id"]  # type: ignore[index]

    def voucher_id() -> str | None:
        order = as_json(orderline(stack, "order", "get", order_id, "--json"))
        assert isinstance(order, dict)
        return str(order["voucher_id"]) or None

    voucher = wait_until("the order's voucher", voucher_id, 90)
    file = tmp_path / "voucher.json"
    got = as_json(orderline(stack, "voucher", "get", voucher, "--out", str(file), "--json"))
    assert got["voucher"]["order_id"] == order_id and got["file"] == str(file)  # type: ignore[index]
    shown = orderline(stack, "voucher", "get", voucher)
    assert shown.returncode == 0 and f"业务开通凭证 {voucher}" in shown.stdout

    key = str(stack.voucher_public_key_file)
    verified = orderline(stack, "voucher", "verify", str(file), "--public-key", key, "--json")
    verdict = as_json(verified)
    assert verdict["valid"] is True and verdict["voucher_id"] == voucher  # type: ignore[index]
    statement = base64.b64decode(json.loads(file.read_bytes())["payload"]).decode()
    assert "李" in statement and "李娜" not in statement and "13800138005" not in statement

    data = bytearray(file.read_bytes())
    data[len(data) // 3] ^= 0x02
    file.write_bytes(bytes(data))
    refused = orderline(stack, "voucher", "verify", str(file), "--public-key", key)
    assert refused.returncode == 1 and refused.stdout.startswith("INVALID "), refused.stdout


def _fail_safety(stack: LocalStack, device_id: str) -> None:
    """One sample of a device whose safety protection failed: a critical alarm at once."""
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from orderline.device.v1 import device_pb2, device_pb2_grpc

    observed_at = Timestamp()
    observed_at.GetCurrentTime()
    sample = device_pb2.TelemetrySample(
        device_id=device_id, observed_at=observed_at, noise_db=30, vibration_mm_s=0.5,
        display_ok=True, key_latency_ms=20, line_error_rate=0, line_up=True, cpu_pct=20,
        memory_pct=30, disk_pct=40, temperature_c=45, safety_ok=False,
    )  # fmt: skip
    with grpc.insecure_channel(stack.address("device-monitor")) as channel:
        reply = device_pb2_grpc.TelemetryIngestServiceStub(channel).StreamTelemetry(
            iter([device_pb2.StreamTelemetryRequest(samples=[sample])]),
            metadata=(("authorization", "Bearer dev-service"),),
            timeout=10,
        )
    assert reply.accepted == 1


def test_alarms_and_a_device_s_health_from_the_cli(stack: LocalStack) -> None:
    listed = as_json(orderline(stack, "alarm", "list", "--page-size", "5", "--json"))
    assert isinstance(listed, dict) and isinstance(listed["alarms"], list)
    assert len(listed["alarms"]) <= 5
    shown = orderline(stack, "alarm", "list", "--state", "raised", "--acknowledged", "no")
    assert shown.returncode == 0, shown.stderr
    assert_table(shown.stdout, *ALARM_HEADERS)

    # A device of the fleet (CPE-0001..CPE-0040), healthy or not: its condition and alarms.
    health = as_json(orderline(stack, "device", "health", "CPE-0002", "--json"))
    assert health["health"]["device_id"] == "CPE-0002"  # type: ignore[index]
    assert health["health"]["condition"].startswith("DEVICE_CONDITION_")  # type: ignore[index]
    assert isinstance(health["open_alarms"], list)  # type: ignore[index]
    text = orderline(stack, "device", "health", "CPE-0002")
    assert text.returncode == 0 and text.stdout.startswith("device CPE-0002  condition ")

    unknown = orderline(stack, "alarm", "ack", "no-such-alarm", "--json")
    assert unknown.returncode == 1 and unknown.stdout == ""
    error = json.loads(unknown.stderr)["error"]
    assert error["code"] == "NOT_FOUND" and "no-such-alarm" in error["message"], error
    unknown = orderline(stack, "alarm", "ack", "no-such-alarm")
    assert unknown.returncode == 1 and unknown.stderr.startswith("NOT_FOUND: "), unknown.stderr
    bad = orderline(stack, "alarm", "list", "--severity", "dreadful", "--json")
    assert bad.returncode == 2 and json.loads(bad.stderr)["error"]["code"] == "INVALID_ARGUMENT"


ALARM_HEADERS = ("alarm", "device", "category", "severity", "state", "ack", "raised", "detail")


def test_an_engineer_acknowledges_and_maintenance_clears_an_alarm(stack: LocalStack) -> None:
    device = "CLI-SAFETY-1"
    _fail_safety(stack, device)

    def raised() -> dict[str, object] | None:
        listed = as_json(
            orderline(stack, "alarm", "list", "--device", device, "--category", "safety", "--json")
        )
        alarms = listed["alarms"]  # type: ignore[index]
        return alarms[0] if alarms else None

    alarm = wait_until("the safety alarm", raised, 30)
    assert alarm["perceived_severity"] == "PERCEIVED_SEVERITY_CRITICAL"
    alarm_id = str(alarm["id"])

    unfit = orderline(stack, "device", "fitness", device)
    assert unfit.returncode == 0, unfit.stderr
    assert unfit.stdout.startswith("fit: no"), unfit.stdout
    assert "ABNORMAL_SAFETY" in unfit.stdout and alarm_id in unfit.stdout
    verdict = as_json(orderline(stack, "device", "fitness", device, "--json"))
    assert verdict["fit"] is False  # type: ignore[index]
    assert alarm_id in verdict["details"][0]["alarm_ids"]  # type: ignore[index]
    health = orderline(stack, "device", "health", device)
    # A safety failure goes to maintenance at once: a ticket is open and the device is under it.
    assert "condition under maintenance" in health.stdout, health.stdout
    assert alarm_id in health.stdout, health.stdout
    tickets = as_json(orderline(stack, "ticket", "list", "--device", device, "--json"))
    assert len(tickets["tickets"]) == 1, tickets  # type: ignore[index]

    acked = orderline(stack, "alarm", "ack", alarm_id)
    assert acked.returncode == 0, acked.stderr
    assert (
        acked.stdout.startswith("acknowledged:") and "acknowledged by engineer-dev" in acked.stdout
    )

    no_reason = orderline(stack, "alarm", "clear", alarm_id, "--json")
    assert no_reason.returncode == 1
    error = json.loads(no_reason.stderr)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["reason"]
    cleared = as_json(
        orderline(stack, "alarm", "clear", alarm_id, "--reason", "protection replaced", "--json")
    )
    assert cleared["alarm"]["state"] == "ALARM_STATE_CLEARED"  # type: ignore[index]
    assert cleared["alarm"]["clear_reason"] == "protection replaced"  # type: ignore[index]
    again = orderline(stack, "alarm", "ack", alarm_id)
    assert again.returncode == 1 and again.stderr.startswith("FAILED_PRECONDITION: ")
