"""Outages of what the services stand on — the broker, the database — and more callers than a
server admits: every service says it is not ready while it cannot work, callers are told to
retry (UNAVAILABLE, RESOURCE_EXHAUSTED), never INTERNAL, and afterwards every accepted order
completes with each effect once.

Each test runs its own stack of real processes; the audits are those of the crash tests
(`faults.py`): one order per request id, one job, voucher, configuration, delivery and dossier
per order, reporting equal to intake, nothing dead-lettered.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli.stack import SERVICES, LocalStack
from orderline_devtools.local import PostgresServer
from tests.e2e.faults import (
    CLERK,
    MANAGER,
    Audit,
    audit_archive,
    audit_fleet,
    audit_gateway,
    audit_orders,
    audit_provisioning,
    audit_reporting,
    channel,
    create_order,
    dead_letters,
    new_stack,
    order_request,
    reliability,
    wait_terminal,
    wait_until,
)

pytestmark = pytest.mark.e2e

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(address: str) -> int | None:
    """The server's own answer (SERVING or NOT_SERVING), or None when nothing answers."""
    try:
        with channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return int(reply.status)
    except grpc.RpcError:
        return None


def all_report(stack: LocalStack, names: Sequence[str], status: int) -> bool:
    return all(health(stack.address(n)) == status for n in names)


def create_range(stack: LocalStack, prefix: str, numbers: range) -> list[str]:
    # Distinct numbers give distinct devices, so no two orders of a test share one.
    return [create_order(stack, order_request(prefix, i, stack.devices)) for i in numbers]


def call_code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


def audit_everything(stack: LocalStack, ids: list[str], prefix: str, name: str) -> Audit:
    done = wait_terminal(stack, ids, within=240)
    audit = Audit()
    audit_orders(stack, done, prefix, audit)
    jobs = audit_provisioning(stack, done, audit)
    audit_archive(stack, done, audit)
    audit_reporting(stack, audit)
    audit_fleet(stack, jobs, audit)
    audit_gateway(stack, jobs, audit)
    letters = dead_letters(stack)
    audit.check(letters == 0, f"{letters} events dead-lettered")
    reliability(
        name,
        orders=audit.orders,
        completed=audit.completed,
        orders_lost=audit.lost,
        duplicated_effects=audit.duplicated,
        dead_letters=letters,
    )
    assert not audit.problems, audit.problems
    assert audit.completed == len(ids) and audit.duplicated == 0
    return audit


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[list[LocalStack]]:
    """Stacks a test starts; each is stopped afterwards whatever happened."""
    stacks: list[LocalStack] = []
    yield stacks
    for s in stacks:
        s.stop()


def test_broker_restart_mid_run_loses_no_order(
    tmp_path: Path, stack_factory: list[LocalStack]
) -> None:
    stack = new_stack(tmp_path)
    stack_factory.append(stack)
    stack.start(timeout=90)

    ids = create_range(stack, "broker", range(0, 10))
    stack.kill("nats")  # SIGKILL: orders are mid-flight
    wait_until(
        "every service to report NOT_SERVING",
        lambda: all_report(stack, SERVICES, NOT_SERVING),
        within=30,
    )
    # Intake still takes orders: they wait in its outbox for the broker.
    ids += create_range(stack, "broker", range(10, 15))
    stack.restart("nats")  # same port, same store
    wait_until(
        "every service to be SERVING again", lambda: all_report(stack, SERVICES, SERVING), 60
    )
    ids += create_range(stack, "broker", range(15, 20))
    audit_everything(stack, ids, "broker", "broker-restart")


def test_services_started_before_the_broker_become_ready_when_it_appears(
    tmp_path: Path, stack_factory: list[LocalStack]
) -> None:
    stack = new_stack(tmp_path)
    stack_factory.append(stack)
    stack.plan()
    for proc in stack.procs.values():
        proc.start()

    wait_until(
        "every service to answer NOT_SERVING without a broker",
        lambda: all_report(stack, SERVICES, NOT_SERVING),
        within=60,
    )
    time.sleep(2)  # and to keep saying so, not to flip on a timer
    assert all_report(stack, SERVICES, NOT_SERVING)

    assert stack.nats is not None
    stack.nats.start()
    stack.wait_healthy(list(stack.procs), timeout=60)
    ids = create_range(stack, "late-broker", range(0, 5))
    audit_everything(stack, ids, "late-broker", "broker-absent-at-start")


def test_postgres_outage_is_unavailable_then_every_order_completes(
    tmp_path: Path, stack_factory: list[LocalStack]
) -> None:
    pg = PostgresServer().start()
    try:
        urls = {svc: pg.create_database(svc.replace("-", "_")) for svc in SERVICES}
        stack = new_stack(tmp_path, database_urls=urls)
        stack_factory.append(stack)
        stack.start(timeout=90)

        ids = create_range(stack, "pg", range(0, 8))
        pg.stop(keep_data=True)
        wait_until(
            "every service to report NOT_SERVING",
            lambda: all_report(stack, SERVICES, NOT_SERVING),
            within=30,
        )
        with channel(stack.address("intake")) as ch:
            orders = order_pb2_grpc.OrderServiceStub(ch)
            codes = {
                "CreateOrder": call_code(
                    lambda: orders.CreateOrder(
                        order_request("pg", 99, stack.devices), metadata=CLERK, timeout=20
                    )
                ),
                "GetOrder": call_code(
                    lambda: orders.GetOrder(
                        order_pb2.GetOrderRequest(order_id=ids[0]), metadata=CLERK, timeout=20
                    )
                ),
                "ListOrders": call_code(
                    lambda: orders.ListOrders(
                        order_pb2.ListOrdersRequest(), metadata=CLERK, timeout=20
                    )
                ),
            }
        assert codes == dict.fromkeys(codes, grpc.StatusCode.UNAVAILABLE)

        pg.start()
        wait_until(
            "every service to be SERVING again", lambda: all_report(stack, SERVICES, SERVING), 60
        )
        # The refused CreateOrder is retried with its request id, as a careful client does.
        ids += create_range(stack, "pg", range(8, 12))
        ids.append(create_order(stack, order_request("pg", 99, stack.devices)))
        audit_everything(stack, ids, "pg", "postgres-outage")
    finally:
        pg.stop()


def test_a_locked_sqlite_database_is_unavailable_and_an_expired_call_leaves_nothing(
    tmp_path: Path, stack_factory: list[LocalStack]
) -> None:
    stack = new_stack(tmp_path, extra_env={"ORDERLINE_DATABASE_LOCK_TIMEOUT_SECONDS": "2"})
    stack_factory.append(stack)
    stack.start(timeout=90)
    ids = create_range(stack, "lock", range(0, 3))
    wait_terminal(stack, ids)

    lock = sqlite3.connect(tmp_path / "db" / "intake.db", isolation_level=None, timeout=10)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds intake's write lock
    try:
        with channel(stack.address("intake")) as ch:
            orders = order_pb2_grpc.OrderServiceStub(ch)
            # A caller whose deadline passes first gets DEADLINE_EXCEEDED, and the server
            # gives the call up (checked below: it left no order behind).
            expired = call_code(
                lambda: orders.CreateOrder(
                    order_request("lock", 50, stack.devices), metadata=CLERK, timeout=0.5
                )
            )
            # A patient caller is told to retry.
            refused = call_code(
                lambda: orders.CreateOrder(
                    order_request("lock", 51, stack.devices), metadata=CLERK, timeout=30
                )
            )
            # Reads of masked data do not need the write lock...
            still_read = orders.GetOrder(
                order_pb2.GetOrderRequest(order_id=ids[0]), metadata=MANAGER, timeout=10
            ).order.id
            # ...but a clear read of personal data is audited first, so it waits for the lock
            # and, when it cannot write its audit record, shows nothing.
            clear_read = call_code(
                lambda: orders.GetOrder(
                    order_pb2.GetOrderRequest(order_id=ids[0]), metadata=CLERK, timeout=10
                )
            )
        assert expired == grpc.StatusCode.DEADLINE_EXCEEDED
        assert refused == grpc.StatusCode.UNAVAILABLE
        assert still_read == ids[0]
        assert clear_read == grpc.StatusCode.UNAVAILABLE
        wait_until(
            "intake to report NOT_SERVING",
            lambda: health(stack.address("intake")) == NOT_SERVING,
            within=20,
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    wait_until("intake to be SERVING again", lambda: health(stack.address("intake")) == SERVING)
    ids.append(create_order(stack, order_request("lock", 51, stack.devices)))
    audit = audit_everything(stack, ids, "lock", "sqlite-lock")
    assert audit.orders == 4
    with channel(stack.address("intake")) as ch:
        listed = order_pb2_grpc.OrderServiceStub(ch).ListOrders(
            order_pb2.ListOrdersRequest(page_size=500), metadata=CLERK, timeout=10
        )
    assert "lock-50" not in {o.client_request_id for o in listed.orders}


def test_calls_beyond_what_a_server_admits_are_refused_at_once(
    tmp_path: Path, stack_factory: list[LocalStack]
) -> None:
    stack = new_stack(tmp_path, extra_env={"ORDERLINE_MAX_CONCURRENT_RPCS": "4"})
    stack_factory.append(stack)
    stack.start(timeout=90)

    with channel(stack.address("intake")) as ch:
        orders = order_pb2_grpc.OrderServiceStub(ch)
        # Four watchers hold every slot intake admits (one may itself be refused while another
        # caller, say provisioning, holds a slot for a moment: open another).
        watchers: list[grpc.Future] = []

        def four_watching() -> bool:
            watchers[:] = [w for w in watchers if not w.done()]
            while len(watchers) < 4:
                watchers.append(
                    orders.WatchOrders(order_pb2.WatchOrdersRequest(), metadata=CLERK, timeout=60)
                )
            time.sleep(0.5)
            return not any(w.done() for w in watchers)

        wait_until("four watchers to hold intake's slots", four_watching, within=20)
        admitted: list[str] = []
        try:

            def refused() -> bool:
                request = order_request("busy", len(admitted), stack.devices)
                try:
                    reply = orders.CreateOrder(request, metadata=CLERK, timeout=5)
                except grpc.RpcError as exc:
                    # Never DEADLINE_EXCEEDED: an over-full server answers, it does not queue.
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc  # type: ignore[attr-defined]
                    return True
                admitted.append(reply.order.id)  # the watchers were not all in yet
                return False

            wait_until(
                "a fifth call to be refused",
                refused,
                within=10,
                detail=lambda: [(w.done(), w.done() and w.code()) for w in watchers],
            )
        finally:
            for w in watchers:
                w.cancel()

    ids = [*admitted, create_order(stack, order_request("busy", 90, stack.devices))]
    audit_everything(stack, ids, "busy", "overload")
