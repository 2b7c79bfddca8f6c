"""Crashes: SIGKILL random processes at random moments during a run of orders, restart them,
and check that nothing was lost and nothing happened twice.

Two kinds of run, because the simulators keep their ledgers in memory:

- services only: the five services are killed (each at least once; the outbox relay and the
  consumers die with their service). The fleet and the gateway stay up, so their counters —
  applies per idempotency key, deliveries per notification key — cover the whole run and can
  be asserted exactly: ≤ 1 apply per key, one configure per job, one delivery per order. The
  gateway fails a share of sends on purpose (ConfigureFaults), so deliveries show retries.
- with the simulators: the fleet and the gateway are killed too. A killed simulator forgets its
  idempotency ledger and its deliveries (a real device or SMS provider would not), so after
  such a run their counters describe only their last life: asserting "one apply per key" on
  them would test the simulator's amnesia, not Orderline. That run asserts what Orderline owns:
  every order terminal and completed, one job, one voucher, one dossier per order, a valid
  chain, reporting equal to intake, nothing dead-lettered.

Sizes: `make test` runs 30 orders and 8 kills (services) and 20 orders and 5 kills (with the
simulators); the soak (`make soak`) runs ORDERLINE_SOAK_ORDERS (300) and ORDERLINE_SOAK_KILLS
(40) of each. `make test` uses a fixed seed, the soak a fresh one; ORDERLINE_CHAOS_SEED replays
a schedule; the seed is printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline_cli.stack import SERVICES
from tests.e2e.faults import (
    ALL_PROCESSES,
    Audit,
    Chaos,
    audit_archive,
    audit_fleet,
    audit_gateway,
    audit_orders,
    audit_provisioning,
    audit_reporting,
    channel,
    create_orders,
    dead_letters,
    env_int,
    new_stack,
    reliability,
    retrying,
    seed_from_env,
    wait_terminal,
)

pytestmark = pytest.mark.e2e

GATEWAY_FAILURE_RATE = 0.3
# Mean seconds between kills plus mean downtime (Chaos defaults): paces order creation so the
# orders are spread over the whole schedule and kills land mid-flight.
SECONDS_PER_KILL = 2.8
# `make test` replays one schedule, so a red CI run can be replayed as it was; the soak draws a
# fresh seed each time (ORDERLINE_CHAOS_SEED overrides either).
BOUNDED_SEED = 2042565134


def crash_run(
    state_dir: Path,
    *,
    name: str,
    orders: int,
    kills: int,
    victims: Sequence[str],
    simulators_survive: bool,
    seed: int | None = None,
) -> Audit:
    seed = seed_from_env(seed)
    print(f"\n{name}: chaos seed {seed} (ORDERLINE_CHAOS_SEED={seed} replays it)", flush=True)
    stack = new_stack(state_dir, devices=max(40, min(orders, 200)))
    stack.start(timeout=90)
    chaos = Chaos(stack, victims, kills, seed)
    try:
        retrying(
            lambda: configure_gateway(stack.address("gateway"), GATEWAY_FAILURE_RATE),
            what="ConfigureFaults",
        )
        chaos.start()
        pace = SECONDS_PER_KILL * kills / orders * 0.9
        ids = create_orders(stack, orders, f"{name}-{seed}", pace=pace)
        chaos.join()
        extra_starts = stack.wait_healthy(list(stack.procs), 90, restart_exited=True)
        done = wait_terminal(stack, ids, within=240)

        audit = Audit()
        audit_orders(stack, done, f"{name}-{seed}", audit)
        jobs = audit_provisioning(stack, done, audit)
        audit_archive(stack, done, audit)
        audit_reporting(stack, audit)
        if simulators_survive:
            audit_fleet(stack, jobs, audit)
            audit_gateway(stack, jobs, audit)
        letters = dead_letters(stack)
        audit.check(letters == 0, f"{letters} events dead-lettered")
        reliability(
            name,
            runs=1,
            seed=seed,
            orders=audit.orders,
            completed=audit.completed,
            kills=len(chaos.done),
            restarts=chaos.restarts + extra_starts,
            killed=",".join(f"{k}:{n}" for k, n in sorted(chaos.killed.items())),
            orders_lost=audit.lost,
            duplicated_effects=audit.duplicated,
            deliveries=audit.deliveries if simulators_survive else "n/a",
            notify_attempts=audit.notify_attempts if simulators_survive else "n/a",
            dead_letters=letters,
        )
        assert len(chaos.done) == kills
        assert set(chaos.killed) == set(victims), chaos.killed
        assert not audit.problems, audit.problems
        assert audit.lost == 0 and audit.duplicated == 0
        # Healthy devices: every order completes, none merely ends held or failed.
        assert audit.completed == orders, audit.not_completed
        if simulators_survive:
            assert audit.deliveries == orders
            # The injected failures were retried: more sends than deliveries.
            assert audit.notify_attempts > audit.deliveries
        return audit
    finally:
        chaos.stop()
        stack.stop()


def configure_gateway(address: str, failure_rate: float) -> None:
    with channel(address) as ch:
        gateway_pb2_grpc.NotificationGatewayServiceStub(ch).ConfigureFaults(
            gateway_pb2.ConfigureFaultsRequest(failure_rate=failure_rate), timeout=5
        )


def test_service_crashes_lose_no_order_and_duplicate_no_effect(tmp_path: Path) -> None:
    crash_run(
        tmp_path,
        name="crashes-services",
        orders=30,
        kills=8,
        victims=SERVICES,
        simulators_survive=True,
        seed=BOUNDED_SEED,
    )


def test_simulator_and_service_crashes_still_complete_every_order_once(tmp_path: Path) -> None:
    crash_run(
        tmp_path,
        name="crashes-simulators",
        orders=20,
        kills=5,
        victims=("fleet", "gateway", "provisioning", "device-monitor"),
        simulators_survive=False,
        seed=BOUNDED_SEED,
    )


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_service_crashes(tmp_path: Path) -> None:
    crash_run(
        tmp_path,
        name="soak-crashes-services",
        orders=env_int("ORDERLINE_SOAK_ORDERS", 300),
        kills=env_int("ORDERLINE_SOAK_KILLS", 40),
        victims=SERVICES,
        simulators_survive=True,
    )


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_every_process_crashes(tmp_path: Path) -> None:
    crash_run(
        tmp_path,
        name="soak-crashes-all",
        orders=env_int("ORDERLINE_SOAK_ORDERS", 300),
        kills=env_int("ORDERLINE_SOAK_KILLS", 40),
        victims=ALL_PROCESSES,
        simulators_survive=False,
    )
