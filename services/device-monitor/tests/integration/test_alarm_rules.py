"""The alarm rules through the real service: a pending period and a recovery (hysteresis and
keep-firing) seen over real gRPC, the evaluator's transitions recorded with the rules version,
heartbeat loss found by the ticker, and a malformed rules file stopping the real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC
from pathlib import Path

from device_monitor_harness import DeviceMonitor, Launcher, ago, eventually, sample

import orderline_device_monitor
from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline_device_monitor.api.convert import reading_from_proto
from orderline_device_monitor.domain.evaluator import SampleAt, replay
from orderline_device_monitor.domain.health import Category, Severity
from orderline_device_monitor.domain.rules import RULES_FILE, load_rules, parse_rules

GOOD = device_pb2.HEALTH_STATE_GOOD
ABNORMAL = device_pb2.HEALTH_STATE_ABNORMAL

# The shipped default rules, with thermal kept firing for 30 s after it recovers at 70 °C.
KEEP_FIRING_RULES = parse_rules(
    RULES_FILE.read_text(encoding="utf-8")
    .replace('version: "', 'version: "keep-firing-test+')
    .replace(
        """      thermal:
        pending_s: 2
""",
        """      thermal:
        pending_s: 2
        keep_firing_s: 30
""",
    ),
    "keep-firing-test.yaml",
)


async def test_a_fault_must_last_its_pending_period_to_make_a_device_abnormal(
    monitor: DeviceMonitor,
) -> None:
    device = "CPE-0601"
    sent = [
        sample(device, ago(6), temperature_c=90.0),
        sample(device, ago(5)),  # too short: the pending period starts again
        sample(device, ago(4), temperature_c=90.0),
        sample(device, ago(3), temperature_c=90.0),
    ]
    await monitor.stream(*([s] for s in sent))
    # Pending is "degraded": not an alarm, and still fit to be worked on.
    assert (await monitor.health(device)).state == GOOD
    assert (await monitor.fitness(device)).fit
    assert (await monitor.alarms(device_id=device)).alarms == []

    sent.append(sample(device, temperature_c=90.0))
    await monitor.stream([sent[-1]])
    health = await monitor.health(device)
    assert (health.state, list(health.abnormal)) == (ABNORMAL, [device_pb2.HEALTH_CATEGORY_THERMAL])
    reply = await monitor.fitness(device)
    assert (reply.fit, list(reply.reasons)) == (False, ["ABNORMAL_THERMAL"])

    (raised,) = await monitor.transitions(device)
    assert (raised["kind"], raised["category"], raised["severity"]) == (
        "raised",
        "thermal",
        "critical",
    )
    assert raised["rules_version"] == load_rules().version
    assert raised["sample_at"] is not None

    # The recorded decision is the one a replay of the samples against that version gives.
    replayed, _ = replay(
        load_rules(),
        [SampleAt(reading_from_proto(s), s.observed_at.ToDatetime(tzinfo=UTC)) for s in sent],
    )
    assert [(t.kind.value, t.category, t.severity, t.sample_at) for t in replayed] == [
        ("raised", Category.THERMAL, Severity.CRITICAL, raised["sample_at"])
    ]


async def test_a_recovery_needs_its_own_threshold_and_the_keep_firing_time(
    launch: Launcher, db_url: str
) -> None:
    device = "CPE-0602"
    async with launch(db_url, rules=KEEP_FIRING_RULES) as monitor:
        await monitor.stream(
            [sample(device, ago(60), temperature_c=80.0)],
            [sample(device, ago(55), temperature_c=80.0)],
        )
        assert (await monitor.health(device)).state == ABNORMAL

        # 72 °C is under the raise threshold (75) but not at the recovery one (70).
        await monitor.stream([sample(device, ago(50), temperature_c=72.0)])
        assert (await monitor.health(device)).state == ABNORMAL

        # Recovered at 60 °C from 40 s ago; 20 s later it is still kept firing.
        await monitor.stream(
            [sample(device, ago(40), temperature_c=60.0)],
            [sample(device, ago(20), temperature_c=60.0)],
        )
        assert (await monitor.health(device)).state == ABNORMAL
        assert not (await monitor.fitness(device)).fit

        await monitor.stream([sample(device, temperature_c=60.0)])
        assert (await monitor.health(device)).state == GOOD
        assert (await monitor.fitness(device)).fit
        events = await monitor.wait_for_event("device.alarm_cleared")
        assert [e.type for e in events if e.device_id == device] == [
            "device.alarm_raised",
            "device.health_changed",
            "device.abnormal",
            "device.alarm_cleared",
            "device.health_changed",
            "device.recovered",
        ]
        # Dated a minute back but arriving now: the heartbeat (on arrival) was never lost.
        kinds = [t["kind"] for t in await monitor.transitions(device)]
        assert kinds == ["raised", "cleared"]
        (alarm,) = (await monitor.alarms(device_id=device)).alarms
        assert alarm.state == device_pb2.ALARM_STATE_CLEARED


STB = "B860AV2.1 IPTV STB"


async def test_each_device_is_judged_by_the_rules_of_the_model_its_telemetry_names(
    monitor: DeviceMonitor,
) -> None:
    """The shipped rules give the STB's display a 3 s pending period and a critical severity;
    a device that names no model takes the default's: at once, major."""
    stb, plain = "CPE-0611", "CPE-0612"
    await monitor.stream(
        [
            sample(stb, ago(4), display_ok=False, device_model=STB),
            sample(plain, ago(4), display_ok=False),
        ]
    )
    assert (await monitor.health(plain)).state == ABNORMAL
    assert (await monitor.health(stb)).state == GOOD  # pending: not an alarm yet

    await monitor.stream([sample(stb, display_ok=False, device_model=STB)])
    assert (await monitor.health(stb)).state == ABNORMAL
    severities = {
        a.device_id: a.perceived_severity
        for a in (await monitor.alarms()).alarms
        if a.device_id in (stb, plain)
    }
    assert severities == {
        stb: device_pb2.PERCEIVED_SEVERITY_CRITICAL,
        plain: device_pb2.PERCEIVED_SEVERITY_MAJOR,
    }

    # The events and the anomaly record name the model, for reports by model.
    events = await monitor.wait_for_event("device.alarm_raised", count=2)
    models = {}
    for envelope in events:
        if envelope.type == "device.alarm_raised":
            body = device_events_pb2.AlarmRaised()
            assert envelope.payload.Unpack(body)
            models[body.device_id] = body.device_model
    assert models[stb] == STB and models[plain] == ""
    anomalies = await monitor.ticket_call("ListAnomalies", token="dev-engineer", device_model=STB)
    assert [a.device_id for a in anomalies.anomalies] == [stb]


async def test_the_ticker_records_lost_communication(launch: Launcher, tmp_path: Path) -> None:
    async with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'silent.db'}", telemetry_stale_seconds=0.3
    ) as monitor:
        await monitor.stream([sample("CPE-0603")])
        recorded = await eventually(
            lambda: monitor.transitions("CPE-0603"),
            lambda rows: [r["kind"] for r in rows] == ["communication_lost"],
            "the heartbeat ticker to record communication lost",
        )
        assert recorded[0]["sample_at"] is not None
        reply = await monitor.fitness("CPE-0603")
        assert (reply.fit, list(reply.reasons)) == (False, ["NO_RECENT_TELEMETRY"])

        await monitor.stream([sample("CPE-0603")])
        kinds = [r["kind"] for r in await monitor.transitions("CPE-0603")]
        assert kinds[:2] == ["communication_lost", "communication_restored"]


def test_a_malformed_rules_file_stops_the_real_process_with_one_line(tmp_path: Path) -> None:
    """The service as shipped, but with a broken rules file in its package: it refuses to start,
    naming the file, the rule and the field, before it listens."""
    package = Path(orderline_device_monitor.__file__).parent
    copy = tmp_path / "site" / package.name
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    broken = copy / RULES_FILE.name
    text = broken.read_text(encoding="utf-8")
    assert "pending_s: 0" in text
    broken.write_text(text.replace("pending_s: 0", "pending_s: soon", 1), encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(tmp_path / "site"),
        ORDERLINE_GRPC_PORT="0",
        ORDERLINE_TRACE_DIR=str(tmp_path / "traces"),
        ORDERLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/service.db",
        ORDERLINE_NATS_URL="nats://127.0.0.1:9",
        ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="true",
    )
    result = subprocess.run(
        [sys.executable, "-m", "orderline_device_monitor"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("device-monitor: invalid configuration: RulesError: ")
    assert f"{broken}: rule default/safety: field pending_s: must be a finite number" in line
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
