"""Pipeline benchmark: orders/s from CreateOrder to completed, latency percentiles, and the idle
memory of every process. Prints a table and writes bench/results/pipeline.md.

    python -m bench.pipeline [--orders 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack

CLERK = (("authorization", "Bearer dev-clerk"),)
RESULTS = Path(__file__).parent / "results"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def run_orders(address: str, count: int, concurrency: int, devices: int) -> dict[str, float]:
    created_at: dict[str, float] = {}
    completed_at: dict[str, float] = {}
    all_completed = asyncio.Event()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        watch = stub.WatchOrders(order_pb2.WatchOrdersRequest(), metadata=CLERK)

        async def follow() -> None:
            async for update in watch:
                o = update.order
                if o.state == order_pb2.ORDER_STATE_COMPLETED and o.id not in completed_at:
                    completed_at[o.id] = time.perf_counter()
                    if len(completed_at) >= count:
                        all_completed.set()
                        return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        sem = asyncio.Semaphore(concurrency)
        create_latency: list[float] = []

        async def create(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                reply = await stub.CreateOrder(
                    demo_request(i, f"CPE-{i % devices + 1:04d}"), metadata=CLERK, timeout=30
                )
                created_at[reply.order.id] = t0
                create_latency.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(count)))
        created = time.perf_counter()
        await asyncio.wait_for(all_completed.wait(), timeout=600)
        end = time.perf_counter()
        watch.cancel()
        follower.cancel()
    e2e = [(completed_at[i] - created_at[i]) * 1000 for i in created_at]
    return {
        "orders": count,
        "create_per_s": count / (created - start),
        "completed_per_s": count / (end - start),
        "create_p50_ms": statistics.median(create_latency) * 1000,
        "e2e_p50_ms": percentile(e2e, 50),
        "e2e_p95_ms": percentile(e2e, 95),
        "e2e_p99_ms": percentile(e2e, 99),
        "e2e_max_ms": max(e2e),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--devices", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orderline-bench-") as tmp:
        stack = LocalStack(Path(tmp), devices=args.devices, preferred_ports=False)
        try:
            stack.start(timeout=120)
            time.sleep(3)  # let start-up settle before reading idle memory
            memory = {name: rss_mib(p.process.pid) for name, p in stack.procs.items() if p.process}
            result = asyncio.run(
                run_orders(stack.address("intake"), args.orders, args.concurrency, args.devices)
            )
        finally:
            stack.stop()
    lines = [
        f"# Pipeline benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, SQLite, 2 cores)",
        "",
        f"{args.orders} orders, {args.concurrency} CreateOrder calls in flight, "
        f"{args.devices} simulated devices.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| CreateOrder throughput | {result['create_per_s']:.1f} orders/s |",
        f"| create → completed throughput | {result['completed_per_s']:.1f} orders/s |",
        f"| CreateOrder latency p50 | {result['create_p50_ms']:.1f} ms |",
        f"| create → completed p50 | {result['e2e_p50_ms']:.0f} ms |",
        f"| create → completed p95 | {result['e2e_p95_ms']:.0f} ms |",
        f"| create → completed p99 | {result['e2e_p99_ms']:.0f} ms |",
        f"| create → completed max | {result['e2e_max_ms']:.0f} ms |",
        "",
        "| process | idle RSS |",
        "|---|---|",
        *(f"| {name} | {mib:.0f} MiB |" for name, mib in memory.items()),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline.md").write_text(text, encoding="utf-8")
    print(f"written to {RESULTS / 'pipeline.md'}")


if __name__ == "__main__":
    main()
