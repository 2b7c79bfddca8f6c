"""device-monitor at fleet scale, measured (issue 11, item 8): `python -m bench.device_ingest`.

1. **Throughput.** device-monitor's telemetry ingest (protobuf samples to readings, the alarm
   evaluator, the in-memory book) in this process, with 10,000 simulated devices reporting
   healthy readings round after round: samples per second ingested and evaluated by one
   process (one event loop). The first round (every device seen for the first time, written
   once) is reported apart; the steady rounds write nothing, as in production.
2. **Latency.** From an abnormal sample handed to the ingest to the `device.abnormal` event
   arriving from NATS: through the real transaction, the real outbox and its relay, and a real
   NATS JetStream server (`orderline_devtools.local.NatsServer`), on SQLite. p50 and p99 over
   the trials, each a healthy device whose display fails (pending 0), then recovers.

The figures are printed and written to `bench/results/device_ingest.json`; nothing here asserts
a time. Throughput is given per wall-clock second and per CPU second of this process (steadier
on a machine shared with other work). `--profile` adds a cProfile top 15 of the steady rounds
(where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2, envelope_pb2
from orderline_device_monitor.api.convert import readings_from_proto
from orderline_device_monitor.app.book import HealthBook
from orderline_device_monitor.app.ingest import TelemetryIngest
from orderline_device_monitor.bootstrap import build, rules_for
from orderline_device_monitor.settings import DeviceMonitorSettings
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving

RESULTS = Path(__file__).parent / "results" / "device_ingest.json"
DEVICES = 10_000
BATCH = 500
ROUNDS = 5
TRIALS = 200
ACCESS_NODE_SIZE = 10


def device_id(index: int) -> str:
    return f"CPE-{index:05d}"


def healthy(index: int, at: datetime, **values: Any) -> device_pb2.TelemetrySample:
    fields: dict[str, Any] = {
        "noise_db": 35.0 + index % 7,
        "vibration_mm_s": 0.8,
        "display_ok": True,
        "key_latency_ms": 60.0 + index % 13,
        "line_error_rate": 0.0005,
        "line_up": True,
        "cpu_pct": 20.0 + index % 17,
        "memory_pct": 45.0,
        "disk_pct": 40.0,
        "temperature_c": 48.0 + (index % 5) / 2,
        "safety_ok": True,
        "access_node_id": f"AN-{(index - 1) // ACCESS_NODE_SIZE + 1:04d}",
    }
    fields.update(values)
    sample = device_pb2.TelemetrySample(device_id=device_id(index), **fields)
    sample.observed_at.FromDatetime(at)
    return sample


def round_batches(devices: int, at: datetime) -> list[list[device_pb2.TelemetrySample]]:
    samples = [healthy(i, at) for i in range(1, devices + 1)]
    return [samples[i : i + BATCH] for i in range(0, len(samples), BATCH)]


async def ingest_round(ingest: TelemetryIngest, batches: Sequence[Sequence[Any]]) -> int:
    accepted = 0
    for batch in batches:
        result = await ingest.ingest(readings_from_proto(batch))
        accepted += result.accepted
    return accepted


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def measure(
    devices: int, rounds: int, trials: int, work: Path, profile: bool
) -> dict[str, Any]:
    nats_server = NatsServer(work / "nats").start()
    try:
        settings = DeviceMonitorSettings(
            service_name="device-monitor",
            grpc_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{work / 'device-monitor.db'}",
            nats_url=nats_server.url,
            trace_dir=work / "traces",
            allow_development_tokens=True,
        )
        rules = rules_for(settings)
        service = build(settings, rules=rules)
        async with serving(service):
            # The service runs (migrations, outbox relay to NATS); the ingest measured is one
            # of its own, on its database and outbox, fed directly (no gRPC transport).
            book = HealthBook()
            book.ready.set()
            ingest = TelemetryIngest(service.uow, book, service.clock, rules)
            start = datetime.now(UTC) - timedelta(seconds=rounds + 10)

            # --- throughput ---------------------------------------------------------------
            first = round_batches(devices, start)
            began = time.perf_counter()
            first_accepted = await ingest_round(ingest, first)
            first_seconds = time.perf_counter() - began
            steady = [
                round_batches(devices, start + timedelta(seconds=r + 1)) for r in range(rounds)
            ]
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            began, began_cpu = time.perf_counter(), time.process_time()
            accepted = 0
            for batches in steady:
                accepted += await ingest_round(ingest, batches)
            steady_seconds = time.perf_counter() - began
            steady_cpu_seconds = time.process_time() - began_cpu
            if profiler is not None:
                profiler.disable()

            # --- latency ------------------------------------------------------------------
            nc = await nats.connect(nats_server.url)
            arrived: dict[str, float] = {}
            got = asyncio.Event()

            async def on_abnormal(msg: Any) -> None:
                envelope = envelope_pb2.Envelope()
                envelope.ParseFromString(msg.data)
                payload = device_events_pb2.DeviceAbnormal()
                envelope.payload.Unpack(payload)
                arrived.setdefault(payload.device_id, time.perf_counter())
                got.set()

            await nc.subscribe("orderline.device.abnormal", cb=on_abnormal)
            latencies: list[float] = []
            base = datetime.now(UTC)
            for trial in range(trials):
                index = 1 + (trial * 37) % devices
                did = device_id(index)
                at = base + timedelta(milliseconds=trial * 10)
                arrived.pop(did, None)
                got.clear()
                sent = time.perf_counter()
                await ingest.ingest(readings_from_proto([healthy(index, at, display_ok=False)]))
                while did not in arrived:
                    got.clear()
                    await asyncio.wait_for(got.wait(), timeout=10)
                latencies.append((arrived[did] - sent) * 1000)
                # Back to healthy (device.recovered), ready for a later trial.
                await ingest.ingest(
                    readings_from_proto([healthy(index, at + timedelta(milliseconds=5))])
                )
            await nc.close()
    finally:
        nats_server.stop()

    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "devices": devices,
        "batch_size": BATCH,
        "throughput": {
            "what": "samples ingested and evaluated per second by one process "
            "(protobuf -> readings -> evaluator -> in-memory book; steady state, healthy)",
            "rounds": rounds,
            "samples": accepted,
            "seconds": round(steady_seconds, 3),
            "samples_per_second": round(accepted / steady_seconds),
            "cpu_seconds": round(steady_cpu_seconds, 3),
            "samples_per_cpu_second": round(accepted / steady_cpu_seconds),
            "first_round": {
                "what": "every device seen for the first time (one devices row each)",
                "samples": first_accepted,
                "seconds": round(first_seconds, 3),
                "samples_per_second": round(first_accepted / first_seconds),
            },
        },
        "latency_ms": {
            "what": "abnormal sample handed to the ingest -> device.abnormal received from "
            "NATS (transaction, outbox, relay, JetStream), SQLite",
            "trials": len(latencies),
            "p50": round(percentile(latencies, 50), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2),
            "mean": round(statistics.fmean(latencies), 2),
        },
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        result["profile_top15_cumulative"] = out.getvalue().splitlines()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        result["profile_top15_tottime"] = out.getvalue().splitlines()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--profile", action="store_true", help="add a cProfile top 15")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="orderline-device-bench-") as tmp:
        result = asyncio.run(
            measure(args.devices, args.rounds, args.trials, Path(tmp), args.profile)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    t, lat = result["throughput"], result["latency_ms"]
    print(
        f"device ingest, {result['devices']} devices, one process:\n"
        f"  steady state   {t['samples_per_second']:>10,} samples/s "
        f"({t['samples']:,} samples in {t['seconds']} s; "
        f"{t['samples_per_cpu_second']:,} per CPU second)\n"
        f"  first round    {t['first_round']['samples_per_second']:>10,} samples/s "
        f"(every device new)\n"
        f"  abnormal sample -> device.abnormal on NATS: p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms ({lat['trials']} trials)\n"
        f"  written to {args.out}"
    )
    for line in result.get("profile_top15_tottime", []):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
