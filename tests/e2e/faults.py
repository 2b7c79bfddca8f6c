"""Fault-injection harness for the end-to-end reliability tests.

What a user would do to check the system after something broke: create orders with a client
that retries safely (same `client_request_id`), wait until each order is terminal, then count
every effect at its source — the device fleet's applies per idempotency key, the gateway's
deliveries per key, provisioning's jobs and vouchers, archive's dossiers and chain, reporting's
totals against intake's — and print the figures as `RELIABILITY:` lines.

`Chaos` SIGKILLs processes of a `LocalStack` at random moments (seeded) and restarts them on
the same port, database and store.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
from nats.js.errors import NotFoundError

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import SERVICES, LocalStack
from orderline_devtools import waiting
from orderline_runtime.order_states import tmf_name

T = TypeVar("T")

CLERK = (("authorization", "Bearer dev-clerk"),)
MANAGER = (("authorization", "Bearer dev-manager"),)
AUDITOR = (("authorization", "Bearer dev-auditor"),)

# What a well-behaved client retries: the server is down, restarting or overloaded.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# The states an order ends in: each gets a dossier.
ENDED = frozenset(
    {
        order_pb2.ORDER_STATE_COMPLETED,
        order_pb2.ORDER_STATE_FAILED,
        order_pb2.ORDER_STATE_REJECTED,
        order_pb2.ORDER_STATE_CANCELLED,
    }
)
# Where a run stops: an end, or held for a person (a held order is not archived until it ends).
TERMINAL = ENDED | {order_pb2.ORDER_STATE_HELD}

# Faster retries than production so a bounded run ends in seconds; same code paths.
FAST_RETRIES = {
    "ORDERLINE_RETRY_INITIAL_SECONDS": "0.2",
    "ORDERLINE_RETRY_MAX_SECONDS": "3",
    "ORDERLINE_SHUTDOWN_GRACE_SECONDS": "5",
}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def seed_from_env(default: int | None = None) -> int:
    """ORDERLINE_CHAOS_SEED reproduces a run; otherwise a fresh seed (printed by the caller)."""
    value = os.environ.get("ORDERLINE_CHAOS_SEED", "")
    if value.strip():
        return int(value)
    return default if default is not None else random.SystemRandom().randrange(1, 2**31)


def reliability(test: str, **figures: object) -> None:
    """One line of figures, collected from `pytest -s` output by its prefix."""
    parts = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"RELIABILITY: {test} {parts}", flush=True)


def new_stack(state_dir: Path, **kwargs: Any) -> LocalStack:
    extra_env = {**FAST_RETRIES, **kwargs.pop("extra_env", {})}
    kwargs.setdefault("devices", 40)
    return LocalStack(state_dir, preferred_ports=False, extra_env=extra_env, **kwargs)


# --- calling the stack ---------------------------------------------------------------------


def channel(address: str) -> grpc.Channel:
    # Short reconnect backoff: a restarted server is found again within a second.
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def retrying(call: Callable[[], T], *, within: float = 90.0, what: str = "call") -> T:
    """Calls until it succeeds, retrying transient failures (a server down or restarting)."""
    started = time.monotonic()
    deadline = started + within
    delay = 0.1
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code not in TRANSIENT or time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: {code} {exc.details()} "  # type: ignore[attr-defined]
                    f"({attempts} attempts in {time.monotonic() - started:.1f}s, "
                    f"at {time.strftime('%H:%M:%S')})"
                ) from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() in TRANSIENT  # type: ignore[attr-defined]


def wait_until(
    what: str,
    check: Callable[[], T | None],
    within: float = 120.0,
    detail: Callable[[], object] | None = None,
) -> T:
    """Polls `check` (transient gRPC errors count as not yet) until it returns a truthy value;
    `detail` adds what to show when it never does."""
    return waiting.wait_until(what, check, within, retry=_transient, detail=detail)


def order_request(prefix: str, i: int, devices: int) -> order_pb2.CreateOrderRequest:
    request = demo_request(i, f"CPE-{i % devices + 1:04d}")
    request.client_request_id = f"{prefix}-{i}"
    return request


def create_order(
    stack: LocalStack, request: order_pb2.CreateOrderRequest, within: float = 90.0
) -> str:
    """Creates one order the way a careful client does: retries with the same request id, so
    a reply lost in a crash never makes a second order."""

    def call() -> str:
        with channel(stack.address("intake")) as ch:
            reply = order_pb2_grpc.OrderServiceStub(ch).CreateOrder(
                request, metadata=CLERK, timeout=10
            )
        return str(reply.order.id)

    return retrying(call, within=within, what=f"CreateOrder {request.client_request_id}")


def create_orders(
    stack: LocalStack,
    count: int,
    prefix: str,
    *,
    pace: float = 0.0,
    stop_early: threading.Event | None = None,
) -> list[str]:
    ids: list[str] = []
    for i in range(count):
        ids.append(create_order(stack, order_request(prefix, i, stack.devices)))
        if pace:
            time.sleep(pace)
        if stop_early is not None and stop_early.is_set():
            break
    return ids


def all_pages(fetch: Callable[[str], Any], items: str) -> list[Any]:
    """Every item of a paged List RPC: `fetch(page_token)` returns one page."""
    found: list[Any] = []
    token = ""
    while True:
        page = fetch(token)
        found.extend(getattr(page, items))
        token = page.next_page_token
        if not token:
            return found


def list_orders_at(address: str) -> list[order_pb2.Order]:
    with channel(address) as ch:
        stub = order_pb2_grpc.OrderServiceStub(ch)
        return all_pages(
            lambda token: stub.ListOrders(
                order_pb2.ListOrdersRequest(page_size=500, page_token=token),
                metadata=MANAGER,
                timeout=15,
            ),
            "orders",
        )


def list_orders(stack: LocalStack) -> list[order_pb2.Order]:
    return list_orders_at(stack.address("intake"))


def is_terminal(order: order_pb2.Order) -> bool:
    # Ended means archived too, however it ended: the dossier is the last effect of the run.
    if order.state == order_pb2.ORDER_STATE_COMPLETED:
        return bool(order.dossier_id)
    if order.state in ENDED:
        return bool(order.state_reason) and bool(order.dossier_id)
    return order.state in TERMINAL and bool(order.state_reason)


def wait_terminal(
    stack: LocalStack, ids: Sequence[str], within: float = 180.0
) -> dict[str, order_pb2.Order]:
    wanted = set(ids)

    def check() -> dict[str, order_pb2.Order] | None:
        orders = {o.id: o for o in list_orders(stack) if o.id in wanted}
        if len(orders) == len(wanted) and all(is_terminal(o) for o in orders.values()):
            return orders
        return None

    try:
        return wait_until(f"{len(ids)} orders to reach a terminal state", check, within)
    except AssertionError:
        orders = {o.id: o for o in list_orders(stack) if o.id in wanted}
        stuck = Counter(
            f"{tmf_name(o.state)}/{o.state_reason or '-'}/dossier={bool(o.dossier_id)}"
            for o in orders.values()
            if not is_terminal(o)
        )
        missing = len(wanted) - len(orders)
        raise AssertionError(
            f"not every order reached a terminal state within {within}s: "
            f"stuck={dict(stuck)} missing={missing}"
        ) from None


# --- counting the effects at their source --------------------------------------------------


@dataclass
class Audit:
    """Effects counted at each source after a run; `problems` lists every broken promise."""

    orders: int = 0
    completed: int = 0
    terminal: int = 0
    duplicated_orders: int = 0
    duplicated_applies: int = 0
    duplicated_vouchers: int = 0
    duplicated_dossiers: int = 0
    duplicated_deliveries: int = 0
    notify_attempts: int = 0
    deliveries: int = 0
    problems: list[str] = field(default_factory=list)
    # Orders that ended otherwise than completed: id, state and the last transition's reason.
    not_completed: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.orders - self.terminal

    @property
    def duplicated(self) -> int:
        return (
            self.duplicated_orders
            + self.duplicated_applies
            + self.duplicated_vouchers
            + self.duplicated_dossiers
            + self.duplicated_deliveries
        )

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def audit_orders(
    stack: LocalStack, orders: dict[str, order_pb2.Order], prefix: str, audit: Audit
) -> None:
    """Intake: one order per client request id, each terminal; reporting agrees with intake."""
    audit.orders = len(orders)
    audit.terminal = sum(is_terminal(o) for o in orders.values())
    audit.completed = sum(o.state == order_pb2.ORDER_STATE_COMPLETED for o in orders.values())
    audit.not_completed = [
        f"{o.id} {tmf_name(o.state)} {o.history[-1].reason_code if o.history else ''}"
        for o in orders.values()
        if o.state != order_pb2.ORDER_STATE_COMPLETED
    ]
    mine = [o for o in list_orders(stack) if o.client_request_id.startswith(prefix + "-")]
    per_request = Counter(o.client_request_id for o in mine)
    audit.duplicated_orders = sum(n - 1 for n in per_request.values())
    audit.check(audit.duplicated_orders == 0, f"orders created twice: {per_request}")


def audit_reporting(stack: LocalStack, audit: Audit, within: float = 60.0) -> None:
    """Reporting's totals equal intake's, overall and per state (it converges: poll)."""

    def agree() -> tuple[Counter[str], Counter[str]] | None:
        intake = Counter(tmf_name(o.state) for o in list_orders(stack))
        with channel(stack.address("reporting")) as ch:
            report = reporting_pb2_grpc.ReportingServiceStub(ch).GetOrderReport(
                reporting_pb2.GetOrderReportRequest(), metadata=MANAGER, timeout=10
            )
        projected = Counter({s.state: int(s.count) for s in report.by_state if s.count})
        if report.total_orders == sum(intake.values()) and projected == intake:
            return intake, projected
        agree.last = (report.total_orders, dict(projected), dict(intake))  # type: ignore[attr-defined]
        return None

    try:
        wait_until("reporting to agree with intake", agree, within)
    except AssertionError:
        audit.problems.append(f"reporting disagrees with intake: {agree.last}")  # type: ignore[attr-defined]
        return
    audit_rebuild(stack, audit)


def audit_rebuild(stack: LocalStack, audit: Audit) -> None:
    """A rebuild of reporting's projection from the streams, after the run and its crashes,
    reaches the live digest at every live checkpoint it can compare (docs/reporting.md)."""
    with channel(stack.address("reporting")) as ch:
        reply: reporting_pb2.RebuildProjectionsResponse = reporting_pb2_grpc.ReportingServiceStub(
            ch
        ).RebuildProjections(
            reporting_pb2.RebuildProjectionsRequest(), metadata=MANAGER, timeout=120
        )
    audit.check(reply.consistent, f"rebuild disagrees with live checkpoints: {reply.mismatches}")
    audit.check(
        reply.checkpoints_matched > 0,
        f"no live checkpoint to compare the rebuild with: {reply.checkpoints_compared} compared",
    )


def list_jobs(address: str) -> list[provisioning_pb2.ProvisioningJob]:
    with channel(address) as ch:
        stub = provisioning_pb2_grpc.ProvisioningServiceStub(ch)
        return all_pages(
            lambda token: stub.ListJobs(
                provisioning_pb2.ListJobsRequest(page_size=500, page_token=token),
                metadata=MANAGER,
                timeout=15,
            ),
            "jobs",
        )


def list_dossiers(address: str) -> list[archive_pb2.Dossier]:
    with channel(address) as ch:
        stub = archive_pb2_grpc.ArchiveServiceStub(ch)
        return all_pages(
            lambda token: stub.ListDossiers(
                archive_pb2.ListDossiersRequest(page_size=500, page_token=token),
                metadata=AUDITOR,
                timeout=15,
            ),
            "dossiers",
        )


def audit_provisioning(
    stack: LocalStack, orders: dict[str, order_pb2.Order], audit: Audit
) -> dict[str, provisioning_pb2.ProvisioningJob]:
    """One job per order; exactly one voucher per completed order, the one intake recorded."""
    jobs = [j for j in list_jobs(stack.address("provisioning")) if j.order_id in orders]
    per_order = Counter(j.order_id for j in jobs)
    audit.check(
        all(n == 1 for n in per_order.values()) and len(per_order) == len(orders),
        f"jobs per order not exactly one: {len(per_order)} orders with jobs, "
        f"{sum(n > 1 for n in per_order.values())} with several",
    )
    by_order = {j.order_id: j for j in jobs}
    vouchers: Counter[str] = Counter()
    with channel(stack.address("provisioning")) as ch:
        stub = provisioning_pb2_grpc.VoucherServiceStub(ch)
        for order in orders.values():
            if order.state != order_pb2.ORDER_STATE_COMPLETED:
                continue
            job = by_order.get(order.id)
            if job is None:
                continue
            audit.check(
                job.voucher_id == order.voucher_id and bool(job.voucher_id),
                f"order {order.id}: intake has voucher {order.voucher_id!r}, "
                f"provisioning {job.voucher_id!r}",
            )
            voucher = stub.GetVoucher(
                provisioning_pb2.GetVoucherRequest(voucher_id=job.voucher_id),
                metadata=MANAGER,
                timeout=10,
            ).voucher
            audit.check(voucher.order_id == order.id, f"voucher {voucher.id} of another order")
            vouchers[voucher.order_id] += 1
    # Distinct voucher ids per order across both services' records.
    ids_per_order = Counter(o.voucher_id for o in orders.values() if o.voucher_id)
    audit.duplicated_vouchers = sum(n - 1 for n in ids_per_order.values())
    audit.check(audit.duplicated_vouchers == 0, "one voucher id recorded for several orders")
    return by_order


def audit_archive(stack: LocalStack, orders: dict[str, order_pb2.Order], audit: Audit) -> None:
    """Exactly one dossier per order that ended (completed, cancelled, rejected or failed),
    in a hash chain that verifies."""
    dossiers = list_dossiers(stack.address("archive"))
    with channel(stack.address("archive")) as ch:
        chain = archive_pb2_grpc.ArchiveServiceStub(ch).VerifyChain(
            archive_pb2.VerifyChainRequest(), metadata=AUDITOR, timeout=30
        )
    per_order = Counter(d.order_id for d in dossiers if d.order_id in orders)
    audit.duplicated_dossiers = sum(n - 1 for n in per_order.values())
    ended = {i for i, o in orders.items() if o.state in ENDED}
    audit.check(audit.duplicated_dossiers == 0, f"orders with several dossiers: {per_order}")
    audit.check(set(per_order) == ended, "ended orders without a dossier, or the reverse")
    for order_id in ended:
        dossier_ids = {d.id for d in dossiers if d.order_id == order_id}
        audit.check(
            orders[order_id].dossier_id in dossier_ids,
            f"order {order_id}: intake's dossier id is not archive's",
        )
    audit.check(chain.valid, f"hash chain broken at {chain.first_broken_dossier_id}")
    audit.check(
        chain.records_checked == len(dossiers),
        f"chain checked {chain.records_checked} of {len(dossiers)} dossiers",
    )


def audit_fleet(
    stack: LocalStack, jobs: dict[str, provisioning_pb2.ProvisioningJob], audit: Audit
) -> None:
    """No device applied a configuration twice for one idempotency key; one configure each."""
    with channel(stack.address("fleet")) as ch:
        counters = agent_pb2_grpc.DeviceAgentServiceStub(ch).GetCounters(
            agent_pb2.GetCountersRequest(), timeout=10
        )
    applies = dict(counters.applies_by_key)
    audit.duplicated_applies = sum(n - 1 for n in applies.values() if n > 1)
    audit.check(
        audit.duplicated_applies == 0,
        f"keys applied more than once: {[k for k, n in applies.items() if n > 1]}",
    )
    for job in jobs.values():
        key = f"{job.device_id}/{job.id}:configure"
        if job.state == provisioning_pb2.JOB_STATE_COMPLETED:
            audit.check(applies.get(key) == 1, f"{key} applied {applies.get(key, 0)} times")


def audit_gateway(
    stack: LocalStack, jobs: dict[str, provisioning_pb2.ProvisioningJob], audit: Audit
) -> list[gateway_pb2.Delivery]:
    """One delivered notification per completed order (one per notify key); attempts show the
    retries of the injected failures."""
    with channel(stack.address("gateway")) as ch:
        deliveries = list(
            gateway_pb2_grpc.NotificationGatewayServiceStub(ch)
            .ListDeliveries(gateway_pb2.ListDeliveriesRequest(), timeout=10)
            .deliveries
        )
    keys = {f"{j.id}:notify" for j in jobs.values()}
    mine = [d for d in deliveries if d.idempotency_key in keys]
    per_key = Counter(d.idempotency_key for d in mine)
    audit.duplicated_deliveries = sum(n - 1 for n in per_key.values())
    audit.deliveries = len(per_key)
    audit.notify_attempts = sum(d.attempts for d in mine)
    completed = {
        f"{j.id}:notify" for j in jobs.values() if j.state == provisioning_pb2.JOB_STATE_COMPLETED
    }
    audit.check(audit.duplicated_deliveries == 0, "a notify key delivered twice")
    audit.check(set(per_key) == completed, "completed jobs without exactly one delivery")
    return mine


def dead_letters(stack: LocalStack) -> int:
    """Messages in the DEADLETTER stream: an event given up on is an effect that never happened."""
    assert stack.nats is not None

    async def count() -> int:
        nc = await nats.connect(stack.nats.url if stack.nats else "", connect_timeout=5)  # type: ignore[union-attr]
        try:
            info = await nc.jetstream().stream_info("DEADLETTER")
            return int(info.state.messages)
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


# --- the bus as stored --------------------------------------------------------------------

STREAMS = ("ORDER", "PROVISIONING", "DEVICE", "ARCHIVE")


@dataclass(frozen=True)
class Stored:
    stream: str
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


async def _read(url: str, streams: tuple[str, ...]) -> list[Stored]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        out = []
        for stream in streams:
            info = await js.stream_info(stream)
            if not info.state.messages:
                continue
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except NotFoundError:
                    continue
                out.append(
                    Stored(stream, seq, msg.subject or "", msg.data or b"", msg.headers or {})
                )
        return out
    finally:
        await nc.close()


def read_streams(url: str, streams: tuple[str, ...] = STREAMS) -> list[Stored]:
    """Every message kept in the given streams, as stored (the bus as a consumer would see it)."""
    return asyncio.run(_read(url, streams))


# --- killing and restarting processes ------------------------------------------------------


@dataclass
class Chaos:
    """SIGKILLs random processes of the stack at random moments and restarts them.

    The schedule is drawn from `seed`: first every victim once in a shuffled order (so a short
    run still kills each), then random picks. A kill may land while the victim is still
    starting up from the previous kill: that is a crash too.
    """

    stack: LocalStack
    victims: Sequence[str]
    kills: int
    seed: int
    gap: tuple[float, float] = (1.0, 3.0)
    downtime: tuple[float, float] = (0.1, 1.5)
    done: list[tuple[float, str]] = field(default_factory=list)
    restarts: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        order = list(self.victims)
        self.rng.shuffle(order)
        extra = [self.rng.choice(self.victims) for _ in range(max(0, self.kills - len(order)))]
        self.schedule = (order + extra)[: self.kills]

    def start(self) -> Chaos:
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        began = time.monotonic()
        try:
            for victim in self.schedule:
                if self._stop.wait(self.rng.uniform(*self.gap)):
                    return
                self.stack.kill(victim)
                self.done.append((round(time.monotonic() - began, 2), victim))
                time.sleep(self.rng.uniform(*self.downtime))
                self.stack.restart(victim)
                self.restarts += 1
        except BaseException as exc:  # surfaced by join()
            self._error = exc

    def join(self, timeout: float = 300.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("chaos schedule did not finish")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def killed(self) -> Counter[str]:
        return Counter(v for _, v in self.done)


ALL_PROCESSES = (*SERVICES, "fleet", "gateway")
