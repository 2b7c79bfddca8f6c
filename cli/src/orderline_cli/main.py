"""The `orderline` command: run the local stack, work orders, follow traces, read reports."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from typer.core import TyperGroup

from orderline.archive.v1 import archive_pb2 as _ARCHIVE
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli import (
    aftercare,
    archive_verbs,
    calls,
    certifications,
    demo,
    devices,
    frontdesk,
    projections,
    tickets,
)
from orderline_cli.channels import open_channel
from orderline_cli.jobs import register as register_jobs
from orderline_cli.layout import read_stack_file
from orderline_cli.output import WIDTH, fail, fail_rpc, print_json, state_name, table, to_json
from orderline_cli.traces import load_spans, order_traces, tree_order
from orderline_runtime.order_states import BY_TMF_NAME

if TYPE_CHECKING:
    from orderline_cli.stack import LocalStack


class _Commands(TyperGroup):
    """With `--json` on the command line, a usage error (a missing argument, an unknown
    option) is one JSON error object on stderr too, like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # click's usage errors
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            error = {"error": {"code": "INVALID_ARGUMENT", "message": message}}
            print(json.dumps(error, ensure_ascii=False), file=sys.stderr)
            sys.exit(int(getattr(exc, "exit_code", 2)))
        except typer.Abort:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    help="Orderline: a telecom operator's service orders.", no_args_is_help=True, cls=_Commands
)
order_app = typer.Typer(help="Create, read and watch orders.", no_args_is_help=True)
report_app = typer.Typer(help="Management reports.", no_args_is_help=True)
dossier_app = typer.Typer(
    help="Archived dossiers: list them, export one, verify an export offline.",
    no_args_is_help=True,
)
app.add_typer(order_app, name="order")
app.add_typer(report_app, name="report")
app.add_typer(dossier_app, name="dossier")

console = Console(width=min(Console().width, WIDTH))
STATE_DIR = calls.STATE_DIR
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]


def _address(service: str, override: str | None) -> str:
    return calls.address(service, override)


def _meta(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _state(order: order_pb2.Order, alarm: bool = False) -> str:
    """The state, with why for a held, failed or rejected order (and, with `alarm`, the end of
    the id of the alarm that held it; `order get` shows it whole)."""
    name = state_name(order.state)
    alarm_id = alarm and order.alarm_id and f"alarm …{order.alarm_id[-8:]}"
    why = [r for r in (order.state_reason, alarm_id) if r]
    if (
        order.state
        in (
            order_pb2.ORDER_STATE_HELD,
            order_pb2.ORDER_STATE_FAILED,
            order_pb2.ORDER_STATE_REJECTED,
            order_pb2.ORDER_STATE_PENDING,
        )
        and why
    ):
        return f"{name} ({', '.join(why)})"
    if order.state == order_pb2.ORDER_STATE_ACKNOWLEDGED and order.review_reasons:
        return f"{name} (review: {', '.join(r.code for r in order.review_reasons)})"
    return name


def _milestones(order: order_pb2.Order) -> str:
    if not order.milestones:
        return "-"
    return f"{len(order.milestones)}: {order.milestones[-1].name}"


def _clock(ts: Any) -> str:
    return f"{ts.ToDatetime():%H:%M:%S}"


ORDER_COLUMNS = ("order", "state", "type", "device", "milestones")


def _order_row(order: order_pb2.Order) -> list[str]:
    return [
        order.id,
        _state(order),
        order.business_type,
        order.device_id,
        str(len(order.milestones)),
    ]


# --- up --------------------------------------------------------------------------------------


@app.command()
def up(
    demo_orders: Annotated[int, typer.Option("--demo", help="demo orders to submit")] = 8,
    devices: Annotated[int, typer.Option(help="simulated CPE devices")] = 100,
    faulty: Annotated[str, typer.Option(help="faults injected at start")] = demo.FAULTY_DEVICE,
    as_json: JsonOpt = False,
) -> None:
    """Start NATS, the five services and the simulators locally; Ctrl-C stops everything."""
    try:
        from orderline_cli.stack import LocalStack
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("orderline_devtools"):
            raise
        # An installed image has no NATS server or development tools: say what to do instead.
        fail(
            "FAILED_PRECONDITION",
            "orderline up: the local stack needs a development checkout (there: make run)",
            as_json=as_json,
            exit_code=2,
        )
    say = _Say(as_json)
    stack = LocalStack(STATE_DIR, devices=devices, faulty_devices=faulty)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    say.line(f"starting the stack under {STATE_DIR}/ …", event="starting")
    try:
        stack.plan()
        for name, preferred, used in stack.moved_ports:
            say.line(
                f"PORT {preferred} IS TAKEN by another process: {name} listens on "
                f"127.0.0.1:{used} instead",
                event="port_taken",
                style="bold red",
                process=name,
                preferred=preferred,
                port=used,
            )
        try:
            stack.start()
        except (RuntimeError, TimeoutError) as exc:
            # Which process, its exit code and its log's last lines: no traceback of ours.
            fail("UNAVAILABLE", f"the stack did not start: {exc}", as_json=as_json)
        stack.supervise_in_background(lambda text: say.line(text, event="supervisor"))
        _print_stack(stack, say)
        if demo_orders > 1 and demo.faulty_devices(faulty):
            say.line("waiting for device-monitor to see the fleet's faulty devices …")
            unseen = demo.wait_until_abnormal(
                stack.address("device-monitor"), demo.faulty_devices(faulty)
            )
            if unseen:
                say.line(f"device-monitor does not report {', '.join(unseen)} abnormal yet")
        order_ids = demo.submit(stack.address("intake"), demo_orders) if demo_orders else []
        if order_ids:
            say.line(f"submitted {len(order_ids)} demo orders; Ctrl-C stops everything")
            _follow(stack.address("intake"), order_ids, stopping.is_set, say)
            say.line(f"follow one order's trace: orderline trace {order_ids[0]}")
        while not stopping.wait(0.2):
            pass
    finally:
        say.line("stopping: services first, NATS last …", event="stopping")
        stack.stop()
        say.line("stopped; nothing left running", event="stopped")


class _Say:
    """`orderline up`'s output: lines for a person, or one JSON object per line."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.live = not as_json and console.is_terminal

    def line(self, text: str, event: str = "info", style: str = "", **fields: object) -> None:
        if self.as_json:
            print_json({"event": event, "message": text, **fields})
        elif self.live:
            console.print(text, style=style or None, markup=False, highlight=False)
        else:
            print(text, flush=True)  # a log or a pipe: whole lines, never wrapped

    def table(self, text: str) -> None:
        if not self.as_json:
            print(text, flush=True)


def _print_stack(stack: LocalStack, say: _Say) -> None:
    assert stack.nats is not None
    rows = [["nats (JetStream)", stack.nats.url, str(stack.nats.log_file)]]
    rows += [[name, proc.address, str(proc.log)] for name, proc in stack.procs.items()]
    if say.as_json:
        print_json(
            {"event": "up", "processes": {r[0]: {"address": r[1], "log": r[2]} for r in rows}}
        )
        return
    say.table("Orderline is up\n" + table(("process", "address", "log"), rows))
    say.line(f"spans: {stack.trace_dir}/   try: orderline order list")


def _demo_done(order: order_pb2.Order) -> bool:
    """Settled for the demo: completed and archived, or stopped in any other state."""
    if order.state == order_pb2.ORDER_STATE_COMPLETED:
        return bool(order.dossier_id)
    if order.state == order_pb2.ORDER_STATE_ACKNOWLEDGED:
        # Just created, review has not run yet; one the review queue holds names its reasons.
        return bool(order.review_reasons)
    return order.state != order_pb2.ORDER_STATE_IN_PROGRESS


def _follow(
    address: str, order_ids: list[str], stopped: Callable[[], bool], say: _Say, timeout: float = 90
) -> None:
    """Shows the demo orders until each has settled: a live table on a terminal, otherwise one
    line per change. A service that restarts meanwhile is waited for, not an error."""
    channel = open_channel(address)
    stub = order_pb2_grpc.OrderServiceStub(channel)
    deadline = time.monotonic() + timeout
    shown: dict[str, tuple[str, str]] = {}
    unreachable = False
    live = Live(console=console, refresh_per_second=4) if say.live else None
    try:
        if live is not None:
            live.start()
        while not stopped() and time.monotonic() < deadline:
            try:
                orders = [
                    stub.GetOrder(
                        order_pb2.GetOrderRequest(order_id=oid),
                        metadata=_meta("dev-clerk"),
                        timeout=5,
                    ).order
                    for oid in order_ids
                ]
            except grpc.RpcError as err:
                if not unreachable:
                    code = err.code().name if isinstance(err, grpc.Call) else "error"
                    say.line(f"intake does not answer ({code}); waiting for it")
                unreachable = True
                time.sleep(0.5)
                continue
            if unreachable:
                say.line("intake answers again")
                unreachable = False
            if live is not None:
                live.update(_demo_table(orders))
            else:
                for o in orders:
                    now = (_state(o, alarm=True), _milestones(o))
                    if shown.get(o.id) != now:
                        shown[o.id] = now
                        _demo_line(o, say)
            if all(_demo_done(o) for o in orders):
                break
            time.sleep(0.25)
    finally:
        if live is not None:
            live.stop()
        channel.close()


def _demo_table(orders: list[order_pb2.Order]) -> Table:
    # Light borders and whole ids and devices: within 100 columns the reason of a held order
    # fits beside it (the alarm's id is in `orderline order get`).
    grid = Table(title="demo orders (live)", box=box.SIMPLE_HEAD, width=WIDTH)
    for col, least in (("order", 12), ("type", 0), ("device", 8), ("state", 0), ("milestones", 0)):
        grid.add_column(col, no_wrap=True, overflow="ellipsis", min_width=least or None)
    for o in orders:
        colour = {"completed": "green", "held": "yellow", "failed": "red"}.get(
            state_name(o.state), "default"
        )
        grid.add_row(
            o.id[-12:],
            o.business_type,
            o.device_id,
            f"[{colour}]{_state(o)}[/]",
            _milestones(o),
        )
    return grid


def _demo_line(o: order_pb2.Order, say: _Say) -> None:
    if say.as_json:
        print_json({"event": "order", "order": to_json(o)})
        return
    say.line(
        f"{time.strftime('%H:%M:%S')}  {o.id[-12:]}  {o.business_type:<17}  {o.device_id:<8}  "
        f"{_state(o, alarm=True)}  {_milestones(o)}"
    )


# --- order -----------------------------------------------------------------------------------


@order_app.command("create")
def order_create(
    business_type: Annotated[
        str, typer.Option("--type", help="catalogue key")
    ] = "broadband_install",
    name: Annotated[str, typer.Option()] = "",
    phone: Annotated[str, typer.Option(help="E.164, e.g. +8613800138000")] = "",
    id_number: Annotated[
        str, typer.Option("--id-number", help="resident identity number (18 characters)")
    ] = "",
    passport: Annotated[str, typer.Option("--passport", help="passport number")] = "",
    passport_country: Annotated[
        str, typer.Option("--passport-country", help="ISO 3166-1 alpha-3, e.g. GBR")
    ] = "",
    address: Annotated[str, typer.Option("--address", help="installation address")] = "",
    old_address: Annotated[str, typer.Option("--old-address", help="relocation: from")] = "",
    new_address: Annotated[str, typer.Option("--new-address", help="relocation: to")] = "",
    locale: Annotated[str, typer.Option()] = "zh-CN",
    channel: Annotated[str, typer.Option("--channel", help="sms or phone")] = "",
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--document", help="TYPE=FILE, repeatable: the file's SHA-256 and size are sent"
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device")] = "",
    device_model: Annotated[
        str, typer.Option("--device-model", help="e.g. 'HG8245H5 ONT'; checked against the type")
    ] = "",
    plan: Annotated[str, typer.Option()] = "",
    request_id: Annotated[str, typer.Option("--request-id")] = "",
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a new order (retries are safe with the same --request-id)."""
    from orderline_runtime.ids import new_id

    customer = order_pb2.Customer(name=name, phone=phone, address=address, locale=locale)
    if passport or passport_country:
        customer.identity.passport.number = passport
        customer.identity.passport.issuing_country = passport_country
    elif id_number:
        customer.identity.resident_id = id_number
    channels = {
        "": order_pb2.CONTACT_CHANNEL_UNSPECIFIED,
        "sms": order_pb2.CONTACT_CHANNEL_SMS,
        "phone": order_pb2.CONTACT_CHANNEL_PHONE,
    }
    if channel.lower() not in channels:
        fail("INVALID_ARGUMENT", "--channel is sms or phone", as_json=as_json)
    customer.preferred_channel = channels[channel.lower()]
    request = order_pb2.CreateOrderRequest(
        client_request_id=request_id or f"cli-{new_id()}",
        business_type=business_type,
        customer=customer,
        device_id=device,
        plan=plan,
        documents=[_document(spec, as_json) for spec in documents or []],
        device_model=device_model,
    )
    if old_address or new_address:
        request.relocation.old_address = old_address
        request.relocation.new_address = new_address
    with open_channel(_address("intake", intake)) as channel:
        try:
            reply = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                request, metadata=_meta(token or "dev-clerk"), timeout=10
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if as_json:
        print_json(to_json(reply))
        return
    print(("created" if reply.created else "existing order (same request id)") + ":")
    print(table(ORDER_COLUMNS, [_order_row(reply.order)]))


def _document(spec: str, as_json: bool) -> order_pb2.Document:
    """`identity_copy=scan.pdf` -> the document by its content's hash; the file stays here."""
    import hashlib

    kind, sep, file = spec.partition("=")
    if not sep or not kind or not file:
        fail("INVALID_ARGUMENT", f"--document {spec!r}: expected TYPE=FILE", as_json=as_json)
    try:
        content = Path(file).read_bytes()
    except OSError as exc:
        fail("INVALID_ARGUMENT", f"--document {spec!r}: {exc.strerror}", as_json=as_json)
    return order_pb2.Document(
        type=kind, sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content)
    )


@order_app.command("get")
def order_get(
    order_id: str,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one order with its milestones and history."""
    with open_channel(_address("intake", intake)) as channel:
        try:
            order = (
                order_pb2_grpc.OrderServiceStub(channel)
                .GetOrder(
                    order_pb2.GetOrderRequest(order_id=order_id),
                    metadata=_meta(token or "dev-clerk"),
                    timeout=10,
                )
                .order
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if as_json:
        print_json(to_json(order))
        return
    print(table(ORDER_COLUMNS, [_order_row(order)]))
    if order.alarm_id:
        print(f"alarm: {order.alarm_id}")
    _reasons(order)
    print("\nhistory")
    rows = []
    for h in order.history:
        # The first entry records the order: it has no state before it.
        if h.from_state in (h.to_state, order_pb2.ORDER_STATE_UNSPECIFIED):
            change = f"recorded as {state_name(h.to_state)}"
        else:
            change = f"{state_name(h.from_state)} → {state_name(h.to_state)}"
        rows.append([_clock(h.at), change, h.actor, h.reason_code])
    print(table(("at", "change", "by", "reason"), rows))
    if order.milestones:
        print("\nmilestones")
        print(
            table(
                ("reached at", "milestone"),
                [[f"{m.reached_at.ToDatetime():%H:%M:%S.%f}", m.name] for m in order.milestones],
            )
        )
    if order.milestone_dues:
        # The SLA's due times (UTC), and which milestones fell into jeopardy.
        print("\ndue" + ("  (IN JEOPARDY)" if order.in_jeopardy else ""))
        rows = []
        for due in order.milestone_dues:
            reached = calls.when(due.reached_at) if due.HasField("reached_at") else "-"
            late = (
                f"jeopardy since {calls.when(due.jeopardy_raised_at)}"
                if due.HasField("jeopardy_raised_at")
                else ""
            )
            rows.append([due.milestone, calls.when(due.due_at), reached, late])
        print(table(("milestone", "due", "reached", ""), rows))


@order_app.command("list")
def order_list(
    state: Annotated[str, typer.Option(help="TMF641 name, e.g. completed, held")] = "",
    business_type: Annotated[str, typer.Option("--type", help="business type id")] = "",
    created_from: Annotated[
        str, typer.Option("--from", help="created at or after (ISO 8601; no offset: local time)")
    ] = "",
    created_before: Annotated[
        str, typer.Option("--before", help="created before (ISO 8601; no offset: local time)")
    ] = "",
    customer: Annotated[
        str,
        typer.Option(
            "--customer", help="the customer's phone or identity number (matched by keyed hash)"
        ),
    ] = "",
    limit: Annotated[int, typer.Option()] = 50,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List orders, newest first."""
    if state and state not in BY_TMF_NAME:
        fail(
            "INVALID_ARGUMENT",
            f"unknown state {state!r}; one of {', '.join(BY_TMF_NAME)}",
            as_json=as_json,
            exit_code=2,
        )
    request = order_pb2.ListOrdersRequest(
        page_size=limit,
        state=BY_TMF_NAME.get(state, 0),  # type: ignore[arg-type]
        business_type=business_type,
        customer=customer,
    )
    for option, text, stamp in (
        ("--from", created_from, request.created_from),
        ("--before", created_before, request.created_before),
    ):
        if text:
            try:
                at = datetime.fromisoformat(text)
            except ValueError:
                fail(
                    "INVALID_ARGUMENT",
                    f"{option}: not an ISO 8601 time: {text!r}",
                    as_json=as_json,
                    exit_code=2,
                )
            stamp.FromDatetime(at if at.tzinfo else at.astimezone())
    with open_channel(_address("intake", intake)) as channel:
        try:
            reply = order_pb2_grpc.OrderServiceStub(channel).ListOrders(
                request, metadata=_meta(token or "dev-clerk"), timeout=10
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if as_json:
        print_json([to_json(o) for o in reply.orders])
        return
    print(table(ORDER_COLUMNS, [_order_row(o) for o in reply.orders]))


@order_app.command("watch")
def order_watch(
    order_ids: Annotated[list[str] | None, typer.Argument(help="none: every order")] = None,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print orders as they change until Ctrl-C."""
    with open_channel(_address("intake", intake)) as channel:
        stream = order_pb2_grpc.OrderServiceStub(channel).WatchOrders(
            order_pb2.WatchOrdersRequest(order_ids=order_ids or []),
            metadata=_meta(token or "dev-clerk"),
        )
        if not as_json:
            print(table(ORDER_COLUMNS, []), flush=True)
        try:
            for update in stream:
                if as_json:
                    print_json(to_json(update.order))
                else:
                    row = table(ORDER_COLUMNS, [_order_row(update.order)]).splitlines()[-1]
                    print(row, flush=True)
        except grpc.RpcError as err:
            if isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.CANCELLED:
                return
            fail_rpc(err, as_json=as_json)
        except KeyboardInterrupt:
            stream.cancel()


# --- trace -----------------------------------------------------------------------------------


# --- review, amend, hold, resume ---------------------------------------------------------------

review_app = typer.Typer(help="The review queue and a reviewer's decisions.", no_args_is_help=True)
app.add_typer(review_app, name="review")
EtagOpt = Annotated[
    str,
    typer.Option("--etag", help="the etag of the order as read; a stale one is refused"),
]
IntakeOpt = Annotated[str | None, typer.Option("--intake")]


def _order_rpc(
    method: str, request: Any, token: str, intake: str | None, as_json: bool, verb: str
) -> None:
    """Calls one of OrderService's writes and prints the order it answers with."""
    with open_channel(_address("intake", intake)) as channel:
        try:
            reply = getattr(order_pb2_grpc.OrderServiceStub(channel), method)(
                request, metadata=_meta(token), timeout=10
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if as_json:
        print_json(to_json(reply))
        return
    print(f"{verb}:")
    print(table(ORDER_COLUMNS, [_order_row(reply.order)]))
    _reasons(reply.order)


def _reasons(order: order_pb2.Order) -> None:
    if order.requested_fields:
        print(f"waiting for: {', '.join(order.requested_fields)}")
    for r in order.review_reasons:
        print(f"review: {r.code}{f' ({r.field})' if r.field else ''}: {r.description}")
    print(f"etag: {order.etag}")


@review_app.command("queue")
def review_queue(
    business_type: Annotated[str, typer.Option("--type", help="only this business type")] = "",
    page_size: Annotated[int, typer.Option("--page-size")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders waiting for a reviewer, oldest first, with why."""
    request = order_pb2.ListReviewQueueRequest(
        business_type=business_type, page_size=page_size, page_token=page_token
    )
    with open_channel(_address("intake", intake)) as channel:
        try:
            reply = order_pb2_grpc.OrderServiceStub(channel).ListReviewQueue(
                request, metadata=_meta(token or "dev-reviewer"), timeout=10
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [
            o.id,
            _clock(o.review_queued_at) if o.HasField("review_queued_at") else "-",
            o.business_type,
            ", ".join(r.code for r in o.review_reasons) or "-",
        ]
        for o in reply.orders
    ]
    print(table(("order", "queued", "type", "reasons"), rows))
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


@review_app.command("approve")
def review_approve(
    order_id: str,
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve an order in the queue (never one you created)."""
    request = order_pb2.ApproveOrderRequest(order_id=order_id, etag=etag)
    _order_rpc("ApproveOrder", request, token or "dev-reviewer", intake, as_json, "approved")


@review_app.command("reject")
def review_reject(
    order_id: str,
    reasons: Annotated[
        list[str] | None, typer.Option("--reason", help="reason code, repeatable (1 to 3)")
    ] = None,
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject an order with reason codes (docs/order-lifecycle.md lists them)."""
    request = order_pb2.RejectOrderRequest(order_id=order_id, etag=etag, reason_codes=reasons)
    _order_rpc("RejectOrder", request, token or "dev-reviewer", intake, as_json, "rejected")


@review_app.command("request-info")
def review_request_info(
    order_id: str,
    fields: Annotated[
        list[str] | None,
        typer.Option("--field", help="field path the customer must supply, repeatable"),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="reason code")] = "",
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send an order to pending, naming the fields needed (e.g. --field documents)."""
    request = order_pb2.RequestInformationRequest(
        order_id=order_id, etag=etag, field_paths=fields, reason_code=reason
    )
    _order_rpc("RequestInformation", request, token or "dev-reviewer", intake, as_json, "pending")


@order_app.command("amend")
def order_amend(
    order_id: str,
    etag: Annotated[
        str,
        typer.Option(
            "--etag",
            help="the etag of the order as read; without it the order is read first and its "
            "etag sent, so only a change between that read and the write is caught",
        ),
    ] = "",
    name: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    id_number: Annotated[str | None, typer.Option("--id-number")] = None,
    passport: Annotated[str | None, typer.Option("--passport")] = None,
    passport_country: Annotated[str, typer.Option("--passport-country")] = "",
    address: Annotated[str | None, typer.Option("--address")] = None,
    old_address: Annotated[str | None, typer.Option("--old-address")] = None,
    new_address: Annotated[str | None, typer.Option("--new-address")] = None,
    locale: Annotated[str | None, typer.Option()] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="sms or phone")] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    device_model: Annotated[str | None, typer.Option("--device-model")] = None,
    plan: Annotated[str | None, typer.Option()] = None,
    documents: Annotated[
        list[str] | None,
        typer.Option("--document", help="TYPE=FILE, repeatable: replaces every document"),
    ] = None,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the given fields of an acknowledged or pending order; it goes back to review."""
    patch = order_pb2.Order()
    paths: list[str] = []
    c = patch.customer
    for path, value, target in (
        ("customer.name", name, "name"),
        ("customer.phone", phone, "phone"),
        ("customer.address", address, "address"),
        ("customer.locale", locale, "locale"),
        ("device_id", device, "device_id"),
        ("device_model", device_model, "device_model"),
        ("plan", plan, "plan"),
    ):
        if value is not None:
            setattr(c if path.startswith("customer.") else patch, target, value)
            paths.append(path)
    if passport is not None:
        c.identity.passport.number = passport
        c.identity.passport.issuing_country = passport_country
        paths.append("customer.identity")
    elif id_number is not None:
        c.identity.resident_id = id_number
        paths.append("customer.identity")
    if channel is not None:
        channels = {"sms": order_pb2.CONTACT_CHANNEL_SMS, "phone": order_pb2.CONTACT_CHANNEL_PHONE}
        if channel.lower() not in channels:
            fail("INVALID_ARGUMENT", "--channel is sms or phone", as_json=as_json)
        c.preferred_channel = channels[channel.lower()]
        paths.append("customer.preferred_channel")
    if old_address is not None:
        patch.relocation.old_address = old_address
        paths.append("relocation.old_address")
    if new_address is not None:
        patch.relocation.new_address = new_address
        paths.append("relocation.new_address")
    if documents is not None:
        patch.documents.extend(_document(spec, as_json) for spec in documents)
        paths.append("documents")
    if not etag:
        with open_channel(_address("intake", intake)) as ch:
            try:
                etag = (
                    order_pb2_grpc.OrderServiceStub(ch)
                    .GetOrder(
                        order_pb2.GetOrderRequest(order_id=order_id),
                        metadata=_meta(token or "dev-clerk"),
                        timeout=10,
                    )
                    .order.etag
                )
            except grpc.RpcError as err:
                fail_rpc(err, as_json=as_json)
    request = order_pb2.AmendOrderRequest(order_id=order_id, etag=etag, order=patch)
    request.update_mask.paths.extend(paths)
    _order_rpc("AmendOrder", request, token or "dev-clerk", intake, as_json, "amended")


@order_app.command("hold")
def order_hold(
    order_id: str,
    reason: Annotated[str, typer.Option("--reason", help="e.g. CUSTOMER_REQUEST")] = "",
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop the work on an order in progress, with a reason code."""
    request = order_pb2.HoldOrderRequest(order_id=order_id, etag=etag, reason_code=reason)
    _order_rpc("HoldOrder", request, token or "dev-clerk", intake, as_json, "held")


@order_app.command("resume")
def order_resume(
    order_id: str,
    reason: Annotated[str, typer.Option("--reason", help="e.g. CUSTOMER_READY")] = "",
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let the work on an order a person held go on, with a reason code."""
    request = order_pb2.ResumeOrderRequest(order_id=order_id, etag=etag, reason_code=reason)
    _order_rpc("ResumeOrder", request, token or "dev-clerk", intake, as_json, "resumed")


CANCELLATION_STATES = {
    order_pb2.CANCELLATION_STATE_ACKNOWLEDGED: "acknowledged",
    order_pb2.CANCELLATION_STATE_IN_PROGRESS: "inProgress",
    order_pb2.CANCELLATION_STATE_DONE: "done",
    order_pb2.CANCELLATION_STATE_TERMINATED: "terminated",
}


@order_app.command("cancel")
def order_cancel(
    order_id: str,
    reason: Annotated[
        str, typer.Option("--reason", help="e.g. CUSTOMER_REQUEST, CUSTOMER_WITHDREW")
    ] = "",
    request_id: Annotated[
        str,
        typer.Option("--request-id", help="makes a retry safe; a new one when not given"),
    ] = "",
    etag: EtagOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an order (a cancellation request of its own): at once before provisioning,
    else once provisioning has undone its device work; refused once the service is active."""
    request = order_pb2.CancelOrderRequest(
        client_request_id=request_id or f"cli-cancel-{time.time_ns()}",
        order_id=order_id,
        reason_code=reason,
        etag=etag,
    )
    reply = calls.call(
        "intake",
        order_pb2_grpc.OrderServiceStub,
        intake,
        token or "dev-clerk",
        as_json,
        lambda stub, opts: stub.CancelOrder(request, **opts),
    )
    c = reply.cancellation
    if as_json:
        out = to_json(reply)
        out["cancellation"]["state"] = CANCELLATION_STATES.get(c.state, "unspecified")
        print_json(out)
        return
    print(f"cancellation {c.id}: {CANCELLATION_STATES.get(c.state, 'unspecified')}")
    print(f"order {c.order_id}: {state_name(reply.order.state)}")
    print(f"reason {c.reason_code}, requested {calls.when(c.requested_at)} by {c.requested_by}")
    if c.detail:
        print(c.detail)
    elif c.state == order_pb2.CANCELLATION_STATE_IN_PROGRESS:
        print(
            "waiting for provisioning to stop the job and undo its device work"
            " | 等待开通系统停止作业并回退设备配置"
        )


@app.command()
def trace(
    order_id: str,
    trace_dir: Annotated[Path | None, typer.Option("--trace-dir")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Draw every trace of one order as a waterfall across services (reads left out)."""
    directory = trace_dir or _trace_dir()
    traces = order_traces(load_spans(directory), order_id)
    if not traces:
        fail("NOT_FOUND", f"no spans for order {order_id} under {directory}", as_json=as_json)
    if as_json:
        print_json({t: [s.__dict__ for s in spans] for t, spans in traces.items()})
        return
    for trace_id, spans in sorted(traces.items(), key=lambda kv: kv[1][0].start_ns):
        start = min(s.start_ns for s in spans)
        total = max(max(s.end_ns for s in spans) - start, 1)
        services = sorted({s.service for s in spans})
        print(f"\ntrace {trace_id}  {len(spans)} spans  {total / 1e6:.1f} ms")
        print(f"services: {', '.join(services)}")
        ordered = tree_order(spans)
        # Whole span names; the bar takes what is left of the 100 columns (at least 10).
        labels = [" " * depth + s.name for depth, s in ordered]
        label_width = max(len(label) for label in labels)
        service_width = max(len(s.service) for s in spans)
        bar_width = max(10, WIDTH - label_width - service_width - 24)
        print(
            f"{'span':<{label_width}}  {'service':<{service_width}}  {'':<{bar_width}} "
            f"{'start':>8} {'duration':>11}"
        )
        for label, (_, s) in zip(labels, ordered, strict=True):
            left = min(int((s.start_ns - start) / total * bar_width), bar_width - 1)
            bar = max(1, min(int((s.end_ns - s.start_ns) / total * bar_width), bar_width - left))
            mark = "!" if s.status == "ERROR" else "█"
            print(
                f"{label:<{label_width}}  {s.service:<{service_width}}  "
                f"{' ' * left}{mark * bar}{' ' * (bar_width - left - bar)} "
                f"{(s.start_ns - start) / 1e6:8.1f} +{s.duration_ms:7.1f} ms"
            )


def _trace_dir() -> Path:
    info = read_stack_file(STATE_DIR)
    if info and info.get("trace_dir"):
        return Path(str(info["trace_dir"]))
    return Path(os.environ.get("ORDERLINE_TRACE_DIR", STATE_DIR / "traces"))


# --- catalogue -------------------------------------------------------------------------------


@app.command("catalogue")
def catalogue(
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The business types an order may have, with their required fields and documents."""
    reply = calls.call(
        "intake",
        order_pb2_grpc.OrderServiceStub,
        intake,
        token or "dev-clerk",
        as_json,
        lambda stub, opts: stub.ListBusinessTypes(order_pb2.ListBusinessTypesRequest(), **opts),
    )
    if as_json:
        print_json(to_json(reply))
        return
    print(f"catalogue {reply.catalogue_version}\n")
    rows = [
        [
            t.id,
            f"{t.name_zh_cn} / {t.name_en}",
            ", ".join(d.type for d in t.required_documents) or "-",
        ]
        for t in reply.business_types
    ]
    print(table(("type", "name", "documents"), rows))


# --- dossier ---------------------------------------------------------------------------------


@dossier_app.command("list")
def dossier_list(
    order: Annotated[str, typer.Option("--order", help="only this order's dossier")] = "",
    business_type: Annotated[
        str, typer.Option("--type", help="catalogue key, e.g. broadband_install")
    ] = "",
    sealed_after: Annotated[
        str, typer.Option("--sealed-after", help="ISO 8601, inclusive (UTC without an offset)")
    ] = "",
    sealed_before: Annotated[
        str, typer.Option("--sealed-before", help="ISO 8601, exclusive (UTC without an offset)")
    ] = "",
    limit: Annotated[int, typer.Option(help="dossiers per page, at most 500")] = 50,
    page_token: Annotated[str, typer.Option("--page-token", help="from the previous page")] = "",
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List sealed dossiers in chain order, filtered; prints the next page's token if any."""
    request = _ARCHIVE.ListDossiersRequest(
        page_size=limit,
        page_token=page_token,
        order_id=order,
        business_type=business_type,
    )
    for field, text in (("sealed_after", sealed_after), ("sealed_before", sealed_before)):
        if text:
            getattr(request, field).FromDatetime(_utc(text, field, as_json))
    reply = _archive_call(archive, token, as_json, lambda s, m: s.ListDossiers(request, **m))
    if as_json:
        print_json(
            {
                "dossiers": [to_json(d) for d in reply.dossiers],
                "next_page_token": reply.next_page_token,
            }
        )
        return
    rows = [
        (
            str(d.sequence),
            d.order_id,
            d.business_type,
            d.sealed_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            str(len(d.documents)),
            d.content_hash[:16],
        )
        for d in reply.dossiers
    ]
    print(table(("seq", "order", "type", "sealed (UTC)", "docs", "content hash"), rows))
    if reply.next_page_token:
        print(f"next page: --page-token {reply.next_page_token}")


def _utc(text: str, option: str, as_json: bool) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(
            "INVALID_ARGUMENT",
            f"--{option.replace('_', '-')}: not an ISO 8601 time: {text!r}",
            as_json=as_json,
            exit_code=2,
        )
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dossier_app.command("export")
def dossier_export(
    order_id: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="file to write (default: its name)")
    ] = None,
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export an order's dossier with its inclusion proof and a signed checkpoint."""
    request = _ARCHIVE.ExportDossierRequest(order_id=order_id)
    reply = _archive_call(archive, token, as_json, lambda s, m: s.ExportDossier(request, **m))
    path = out or Path(reply.file_name)
    path.write_bytes(reply.content)
    if as_json:
        print_json({"file": str(path), "bytes": len(reply.content)})
        return
    print(f"{path}: {len(reply.content)} bytes")


@dossier_app.command("checkpoint")
def dossier_checkpoint(
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The archive log's signed checkpoint, and the verifier key that checks it."""
    reply = _archive_call(
        archive, token, as_json, lambda s, m: s.GetCheckpoint(_ARCHIVE.GetCheckpointRequest(), **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    print(reply.signed_note, end="")
    print(f"\nverifier key: {reply.verifier_key}")


@dossier_app.command("prove")
def dossier_prove(
    order_id: str,
    size: Annotated[int, typer.Option("--size", help="tree size to prove against; 0: now")] = 0,
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The inclusion proof of an order's dossier in the archive log."""
    request = _ARCHIVE.GetInclusionProofRequest(order_id=order_id, tree_size=size)
    reply = _archive_call(archive, token, as_json, lambda s, m: s.GetInclusionProof(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    print(f"leaf {reply.leaf_index} of {reply.tree_size}, root {reply.root_hash.hex()}")
    for step in reply.proof:
        print(f"  {step.hex()}")


@dossier_app.command("consistency")
def dossier_consistency(
    first: int,
    second: Annotated[int, typer.Argument(help="0: the current size")] = 0,
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The proof that the log at SECOND leaves extends the log at FIRST."""
    request = _ARCHIVE.GetConsistencyProofRequest(first_tree_size=first, second_tree_size=second)
    reply = _archive_call(archive, token, as_json, lambda s, m: s.GetConsistencyProof(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    print(f"{reply.first_tree_size} → {reply.second_tree_size}")
    print(f"  roots {reply.first_root_hash.hex()} → {reply.second_root_hash.hex()}")
    for step in reply.proof:
        print(f"  {step.hex()}")


@dossier_app.command("document")
def dossier_document(
    order_id: str,
    name: str,
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: NAME)")] = None,
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download one document of a dossier, checked against its SHA-256."""
    import hashlib

    request = _ARCHIVE.GetDocumentRequest(order_id=order_id, name=name)
    chunks = _archive_call(archive, token, as_json, lambda s, m: list(s.GetDocument(request, **m)))
    content = b"".join(c.data for c in chunks)
    first = chunks[0]
    if hashlib.sha256(content).hexdigest() != first.sha256:
        fail("DATA_LOSS", f"{name}: the content does not match its SHA-256", as_json=as_json)
    path = out or Path(Path(first.name).name)
    path.write_bytes(content)
    if as_json:
        print_json({"file": str(path), "bytes": len(content), "sha256": first.sha256})
        return
    print(f"{path}: {len(content)} bytes, sha256 {first.sha256}")


def _archive_call(
    address: str | None, token: str | None, as_json: bool, call: Callable[[Any, Any], Any]
) -> Any:
    from orderline.archive.v1 import archive_pb2_grpc

    with open_channel(_address("archive", address)) as channel:
        stub = archive_pb2_grpc.ArchiveServiceStub(channel)
        try:
            return call(stub, {"metadata": _meta(token or "dev-auditor"), "timeout": 30})
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)


@dossier_app.command("purge")
def dossier_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only list what is past its retention")
    ] = False,
    approve: Annotated[
        str | None,
        typer.Option("--approve", help="approve another auditor's purge request (PR-...)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="records in one request (0: 100; at most 1000)")] = 0,
    archive: Annotated[str | None, typer.Option("--archive")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Purge the records past their retention, four-eyes (auditors): one auditor requests it,
    another approves it with --approve; then each record loses its content and a tombstone
    naming both is appended to the log, and proofs of the purged records still verify."""
    request = _ARCHIVE.PurgeExpiredRequest(
        limit=limit, dry_run=dry_run, approve_request_id=approve or ""
    )
    reply = _archive_call(archive, token, as_json, lambda s, m: s.PurgeExpired(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    verb = "purged" if approve else "would purge" if dry_run else "requested the purge of"
    for p in reply.purged:
        until = p.retain_until.ToDatetime().date().isoformat() if p.HasField("retain_until") else ""
        where = f" -> {p.tombstone_key} (leaf {p.tombstone_sequence - 1})" if approve else ""
        print(f"{verb} {p.kind} {p.key} (kept until {until}){where}")
    if not reply.purged:
        print("nothing past its retention" if not approve else "nothing left to purge")
    if reply.awaiting_approval:
        print(
            f"purge {reply.purge_request_id} awaits another auditor: "
            f"orderline dossier purge --approve {reply.purge_request_id}"
        )
    elif approve:
        print(f"purge {approve} requested by {reply.requested_by}, approved by {reply.approved_by}")
    if reply.more:
        print("more records are past their retention: request again")


@dossier_app.command("verify")
def dossier_verify(
    file: Annotated[Path, typer.Argument(help="an exported dossier")],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            envvar="ORDERLINE_ARCHIVE_VERIFIER_KEY",
            help="the archive's verifier key (name+hash+key), or @FILE holding it",
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Verify an exported dossier offline: signature, documents, content hash, inclusion."""
    from orderline_archive.domain.export import verify_export

    verifier_key = Path(key[1:]).read_text().strip() if key.startswith("@") else key
    verdict = verify_export(file.read_bytes(), verifier_key)
    if as_json:
        print_json(
            {
                "valid": verdict.valid,
                "order_id": verdict.order_id,
                "dossier_id": verdict.dossier_id,
                "tree_size": verdict.tree_size,
                "checks": verdict.checks,
                "problem": verdict.problem,
                "withheld": verdict.withheld,
            }
        )
    else:
        for check in verdict.checks:
            print(f"ok    {check}")
        if verdict.valid:
            print(f"verified: dossier {verdict.dossier_id} of order {verdict.order_id}")
        else:
            print(f"FAILED {verdict.problem}")
    if not verdict.valid:
        raise typer.Exit(1)


# --- voucher --------------------------------------------------------------------------------

voucher_app = typer.Typer(
    help="Activation vouchers: get one with its signed envelope, verify one offline.",
    no_args_is_help=True,
)
app.add_typer(voucher_app, name="voucher")


@voucher_app.command("get")
def voucher_get(
    voucher_id: str,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write the signed envelope (DSSE, JSON) to this file"),
    ] = None,
    provisioning: Annotated[str | None, typer.Option("--provisioning")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A voucher with its texts; --out saves its signed envelope for `voucher verify`."""
    from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc

    with open_channel(_address("provisioning", provisioning)) as channel:
        try:
            voucher = (
                provisioning_pb2_grpc.VoucherServiceStub(channel)
                .GetVoucher(
                    provisioning_pb2.GetVoucherRequest(voucher_id=voucher_id),
                    metadata=_meta(token or "dev-clerk"),
                    timeout=10,
                )
                .voucher
            )
        except grpc.RpcError as err:
            fail_rpc(err, as_json=as_json)
    if out is not None:
        # The very bytes issued: a verifier refuses any other form of the same envelope.
        out.write_bytes(voucher.envelope)
    if as_json:
        print_json({"voucher": to_json(voucher), "file": str(out) if out else None})
        return
    print(f"voucher {voucher.id}  order {voucher.order_id}  device {voucher.device_id}")
    print(f"type {voucher.business_type}  issued {_clock(voucher.issued_at)}")
    print(f"key {voucher.key_id or '(unsigned: issued before vouchers were signed)'}")
    for locale in ("zh-CN", "en"):
        if locale in voucher.texts:
            print(f"\n{voucher.texts[locale]}")
    if out is not None:
        print(f"\nsigned envelope: {out} ({len(voucher.envelope)} bytes)")


@voucher_app.command("verify")
def voucher_verify(
    file: Annotated[Path, typer.Argument(help="a voucher's envelope (from voucher get --out)")],
    public_key: Annotated[
        list[Path],
        typer.Option(
            "--public-key",
            help="the operator's Ed25519 public key (PEM; a file may hold several); repeatable",
        ),
    ],
    order: Annotated[
        str | None, typer.Option("--order", help="the order it must be issued for")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a voucher offline: signature by a given key (by key id), statement, order."""
    from orderline_provisioning.domain.attestation import verify_envelope
    from orderline_provisioning.domain.ed25519 import trusted_keys
    from orderline_runtime.keys import ed25519_public_keys

    publics: list[bytes] = []
    for path in public_key:
        try:
            publics += ed25519_public_keys(path.read_bytes(), source=str(path))
        except (OSError, ValueError) as exc:
            fail("INVALID_ARGUMENT", f"--public-key: {exc}", as_json=as_json)
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail("INVALID_ARGUMENT", f"{file}: {exc.strerror or exc}", as_json=as_json)
    verdict = verify_envelope(data, trusted_keys(publics), order_id=order or "")
    if as_json:
        print_json(
            {
                "valid": verdict.valid,
                "reason": verdict.reason,
                "detail": verdict.detail,
                "key_id": verdict.keyid,
                "voucher_id": verdict.voucher_id,
                "order_id": verdict.order_id,
                "device_id": verdict.device_id,
            }
        )
    elif verdict.valid:
        print(
            f"valid: voucher {verdict.voucher_id} of order {verdict.order_id} "
            f"on device {verdict.device_id}, signed by key {verdict.keyid}"
        )
    else:
        print(f"INVALID {verdict.reason}: {verdict.detail}")
    if not verdict.valid:
        raise typer.Exit(1)


# --- alarm, device (orderline_cli.devices) ----------------------------------------------------

devices.register(app)
tickets.register(app)

# --- dossier get, checkpoint (orderline_cli.archive_verbs) -------------------------------------

archive_verbs.register(app, dossier_app)

# --- certification (orderline_cli.certifications) ---------------------------------------------

certifications.register(app)
register_jobs(app)

# --- report digest|rebuild (orderline_cli.projections) ---------------------------------------

projections.register(report_app)

# --- order note|log, followup, case (orderline_cli.aftercare) --------------------------------

aftercare.register(app, order_app)
frontdesk.register(app, order_app)


def run() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
