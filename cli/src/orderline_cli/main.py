"""The `orderline` command: run the local stack, work orders, follow traces, read reports."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_cli import demo
from orderline_cli.layout import SERVICE_PORTS, read_stack_file
from orderline_cli.traces import load_spans, order_traces, tree_order
from orderline_runtime.order_states import BY_TMF_NAME, TMF_NAMES

if TYPE_CHECKING:
    from orderline_cli.stack import LocalStack

app = typer.Typer(help="Orderline: a telecom operator's service orders.", no_args_is_help=True)
order_app = typer.Typer(help="Create, read and watch orders.", no_args_is_help=True)
report_app = typer.Typer(help="Management reports.", no_args_is_help=True)
app.add_typer(order_app, name="order")
app.add_typer(report_app, name="report")

console = Console()
STATE_DIR = Path(os.environ.get("ORDERLINE_STATE_DIR", "var"))
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]

STATE_NAMES = TMF_NAMES


def _address(service: str, override: str | None) -> str:
    if override:
        return override
    env = os.environ.get(f"ORDERLINE_{service.upper().replace('-', '_')}_ADDRESS")
    if env:
        return env
    info = read_stack_file(STATE_DIR)
    if info:
        return str(info["addresses"][service])  # type: ignore[index]
    return f"127.0.0.1:{SERVICE_PORTS[service]}"


def _meta(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _fail(err: grpc.RpcError) -> None:
    assert isinstance(err, grpc.Call)
    console.print(f"[red]{err.code().name}[/red]: {err.details()}")
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                console.print(f"  {v.field}: {v.description}")
    raise typer.Exit(1)


def _as_dict(msg: Any) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def _order_line(order: order_pb2.Order) -> str:
    milestones = ", ".join(m.name for m in order.milestones)
    return f"{order.id}  {STATE_NAMES[order.state]:<14} {order.business_type:<18} {milestones}"


# --- up --------------------------------------------------------------------------------------


@app.command()
def up(
    demo_orders: Annotated[int, typer.Option("--demo", help="demo orders to submit")] = 8,
    devices: Annotated[int, typer.Option(help="simulated CPE devices")] = 100,
    faulty: Annotated[str, typer.Option(help="faults injected at start")] = demo.FAULTY_DEVICE,
) -> None:
    """Start NATS, the five services and the simulators locally; Ctrl-C stops everything."""
    try:
        from orderline_cli.stack import LocalStack
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("orderline_devtools"):
            raise
        # An installed image has no NATS server or development tools: say what to do instead.
        print(
            "orderline up: the local stack needs a development checkout "
            "(in the repository: make run)",
            file=sys.stderr,
        )
        raise typer.Exit(2) from None
    stack = LocalStack(STATE_DIR, devices=devices, faulty_devices=faulty)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    console.print(f"starting the stack under {STATE_DIR}/ …")
    try:
        stack.start()
        _print_stack(stack)
        order_ids = demo.submit(stack.address("intake"), demo_orders) if demo_orders else []
        if order_ids:
            console.print(f"submitted {len(order_ids)} demo orders; Ctrl-C stops everything\n")
            _follow(stack.address("intake"), order_ids, lambda: stopping)
            console.print(f"\nfollow one order's trace: orderline trace {order_ids[0]}")
        while not stopping:
            time.sleep(0.2)
            for proc in stack.procs.values():
                if not proc.running:
                    console.print(proc.exit_report(), style="red", markup=False)
                    stopping = True
    finally:
        console.print("stopping …")
        stack.stop()
        console.print("stopped; nothing left running")


def _print_stack(stack: LocalStack) -> None:
    table = Table(title="Orderline is up", show_lines=False)
    table.add_column("process")
    table.add_column("address")
    table.add_column("log")
    assert stack.nats is not None
    table.add_row("nats (JetStream)", stack.nats.url, str(stack.nats.log_file))
    for name, proc in stack.procs.items():
        table.add_row(name, proc.address, str(proc.log))
    console.print(table)
    console.print(f"spans: {stack.trace_dir}/   try: orderline order list")


def _follow(address: str, order_ids: list[str], stopped: Any, timeout: float = 90) -> None:
    channel = grpc.insecure_channel(address)
    stub = order_pb2_grpc.OrderServiceStub(channel)
    deadline = time.monotonic() + timeout
    with Live(console=console, refresh_per_second=4) as live:
        while not stopped() and time.monotonic() < deadline:
            table = Table(title="demo orders (live)")
            for col in ("order", "type", "device", "state", "milestones"):
                table.add_column(col)
            done = 0
            for oid in order_ids:
                o = stub.GetOrder(
                    order_pb2.GetOrderRequest(order_id=oid), metadata=_meta("dev-clerk"), timeout=5
                ).order
                state = STATE_NAMES[o.state]
                done += o.state != order_pb2.ORDER_STATE_IN_PROGRESS and bool(
                    o.dossier_id or o.state != order_pb2.ORDER_STATE_COMPLETED
                )
                colour = {"completed": "green", "held": "yellow", "failed": "red"}.get(state, "")
                table.add_row(
                    oid[-12:],
                    o.business_type,
                    o.device_id,
                    f"[{colour}]{state}[/{colour}]" if colour else state,
                    " → ".join(m.name for m in o.milestones),
                )
            live.update(table)
            if done == len(order_ids):
                break
            time.sleep(0.25)
    channel.close()


# --- order -----------------------------------------------------------------------------------


@order_app.command("create")
def order_create(
    business_type: Annotated[
        str, typer.Option("--type", help="catalogue key")
    ] = "broadband_install",
    name: Annotated[str, typer.Option()] = "",
    phone: Annotated[str, typer.Option()] = "",
    id_number: Annotated[str, typer.Option("--id-number")] = "",
    address: Annotated[str, typer.Option("--address")] = "",
    locale: Annotated[str, typer.Option()] = "zh-CN",
    device: Annotated[str, typer.Option("--device")] = "",
    plan: Annotated[str, typer.Option()] = "",
    request_id: Annotated[str, typer.Option("--request-id")] = "",
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a new order (retries are safe with the same --request-id)."""
    from orderline_runtime.ids import new_id

    request = order_pb2.CreateOrderRequest(
        client_request_id=request_id or f"cli-{new_id()}",
        business_type=business_type,
        customer=order_pb2.Customer(
            name=name, phone=phone, id_number=id_number, address=address, locale=locale
        ),
        device_id=device,
        plan=plan,
    )
    with grpc.insecure_channel(_address("intake", intake)) as channel:
        try:
            reply = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                request, metadata=_meta(token or "dev-clerk"), timeout=10
            )
        except grpc.RpcError as err:
            _fail(err)
            return
    if as_json:
        print(json.dumps(_as_dict(reply), ensure_ascii=False))
    else:
        console.print(("created " if reply.created else "existing ") + _order_line(reply.order))


@order_app.command("get")
def order_get(
    order_id: str,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one order with its milestones and history."""
    with grpc.insecure_channel(_address("intake", intake)) as channel:
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
            _fail(err)
            return
    if as_json:
        print(json.dumps(_as_dict(order), ensure_ascii=False))
        return
    console.print(_order_line(order))
    for h in order.history:
        console.print(
            f"  {h.at.ToDatetime():%H:%M:%S} {STATE_NAMES[h.from_state]} → "
            f"{STATE_NAMES[h.to_state]} by {h.actor} ({h.reason_code})"
        )
    for m in order.milestones:
        console.print(f"  {m.reached_at.ToDatetime():%H:%M:%S.%f} ✓ {m.name}")


@order_app.command("list")
def order_list(
    state: Annotated[str, typer.Option(help="TMF641 name, e.g. completed, held")] = "",
    limit: Annotated[int, typer.Option()] = 50,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List orders, newest first."""
    if state and state not in BY_TMF_NAME:
        console.print(f"[red]unknown state[/red] {state!r}; one of {', '.join(BY_TMF_NAME)}")
        raise typer.Exit(2)
    request = order_pb2.ListOrdersRequest(page_size=limit, state=BY_TMF_NAME.get(state, 0))  # type: ignore[arg-type]
    with grpc.insecure_channel(_address("intake", intake)) as channel:
        try:
            reply = order_pb2_grpc.OrderServiceStub(channel).ListOrders(
                request, metadata=_meta(token or "dev-clerk"), timeout=10
            )
        except grpc.RpcError as err:
            _fail(err)
            return
    if as_json:
        print(json.dumps([_as_dict(o) for o in reply.orders], ensure_ascii=False))
        return
    for o in reply.orders:
        console.print(_order_line(o))


@order_app.command("watch")
def order_watch(
    order_ids: Annotated[list[str] | None, typer.Argument(help="none: every order")] = None,
    intake: Annotated[str | None, typer.Option("--intake")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print orders as they change until Ctrl-C."""
    with grpc.insecure_channel(_address("intake", intake)) as channel:
        stream = order_pb2_grpc.OrderServiceStub(channel).WatchOrders(
            order_pb2.WatchOrdersRequest(order_ids=order_ids or []),
            metadata=_meta(token or "dev-clerk"),
        )
        try:
            for update in stream:
                if as_json:
                    print(json.dumps(_as_dict(update.order), ensure_ascii=False), flush=True)
                else:
                    console.print(_order_line(update.order))
        except grpc.RpcError as err:
            if isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.CANCELLED:
                return
            _fail(err)
        except KeyboardInterrupt:
            stream.cancel()


# --- trace -----------------------------------------------------------------------------------


@app.command()
def trace(
    order_id: str,
    trace_dir: Annotated[Path | None, typer.Option("--trace-dir")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Draw every trace of one order as a waterfall across services."""
    directory = trace_dir or _trace_dir()
    traces = order_traces(load_spans(directory), order_id)
    if as_json:
        print(
            json.dumps(
                {t: [s.__dict__ for s in spans] for t, spans in traces.items()}, ensure_ascii=False
            )
        )
        return
    if not traces:
        console.print(f"no spans for order {order_id} under {directory}")
        raise typer.Exit(1)
    for trace_id, spans in sorted(traces.items(), key=lambda kv: kv[1][0].start_ns):
        start = min(s.start_ns for s in spans)
        end = max(s.end_ns for s in spans)
        total = max(end - start, 1)
        services = sorted({s.service for s in spans})
        console.print(
            f"\ntrace {trace_id}  {len(spans)} spans  {total / 1e6:.1f} ms  "
            f"services: {', '.join(services)}"
        )
        width = 40
        for depth, s in tree_order(spans):
            left = int((s.start_ns - start) / total * width)
            bar = max(1, int((s.end_ns - s.start_ns) / total * width))
            label = ("  " * depth + s.name)[:52]
            colour = "red" if s.status == "ERROR" else "cyan"
            console.print(
                f"{label:<52} {s.service:<15} "
                f"{' ' * left}[{colour}]{'█' * bar}[/{colour}]{' ' * (width - left - bar)} "
                f"{(s.start_ns - start) / 1e6:8.1f} +{s.duration_ms:7.1f} ms"
            )


def _trace_dir() -> Path:
    info = read_stack_file(STATE_DIR)
    if info and info.get("trace_dir"):
        return Path(str(info["trace_dir"]))
    return Path(os.environ.get("ORDERLINE_TRACE_DIR", STATE_DIR / "traces"))


# --- report ----------------------------------------------------------------------------------


@report_app.command("orders")
def report_orders(
    reporting: Annotated[str | None, typer.Option("--reporting")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders by state and business type."""
    with grpc.insecure_channel(_address("reporting", reporting)) as channel:
        try:
            reply = reporting_pb2_grpc.ReportingServiceStub(channel).GetOrderReport(
                reporting_pb2.GetOrderReportRequest(),
                metadata=_meta(token or "dev-manager"),
                timeout=10,
            )
        except grpc.RpcError as err:
            _fail(err)
            return
    if as_json:
        print(json.dumps(_as_dict(reply), ensure_ascii=False))
        return
    console.print(f"orders: {reply.total_orders}   dossiers sealed: {reply.dossiers_sealed}")
    table = Table("state", "orders")
    for s in reply.by_state:
        table.add_row(s.state, str(s.count))
    console.print(table)
    table = Table("business type", "orders")
    for b in reply.by_business_type:
        table.add_row(b.business_type, str(b.count))
    console.print(table)


def run() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
