"""`orderline cancellation get|list` and `orderline order jeopardy`: what became of a
cancellation request, and the orders with a milestone past its due time (intake's
OrderService)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.order.v1 import order_pb2 as pb
from orderline.order.v1 import order_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import print_json, state_name, table, to_json

cancellation_app = typer.Typer(
    help="Cancellation requests: get one, list them (newest first).", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
IntakeOpt = Annotated[str | None, typer.Option("--intake", help="host:port")]
PageOpt = Annotated[int, typer.Option("--page-size", help="1..500")]
PageTokenOpt = Annotated[str, typer.Option("--page-token", help="from the previous page")]

CANCELLATION_STATES = {
    pb.CANCELLATION_STATE_ACKNOWLEDGED: "acknowledged",
    pb.CANCELLATION_STATE_IN_PROGRESS: "inProgress",
    pb.CANCELLATION_STATE_DONE: "done",
    pb.CANCELLATION_STATE_TERMINATED: "terminated",
}


def register(app: typer.Typer, order_app: typer.Typer) -> None:
    app.add_typer(cancellation_app, name="cancellation")
    order_app.command("jeopardy")(order_jeopardy)


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call("intake", order_pb2_grpc.OrderServiceStub, address, token, as_json, call)


def _cancellation_json(c: pb.Cancellation) -> dict[str, Any]:
    out = to_json(c)
    out["state"] = CANCELLATION_STATES.get(c.state, "unspecified")
    return out


def _more(token: str) -> None:
    if token:
        print(f"more: --page-token {token}")


# --- cancellation get|list -------------------------------------------------------------------


@cancellation_app.command("get")
def cancellation_get(
    cancellation_id: str,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One cancellation request: its state, the order, and how it ended."""
    request = pb.GetCancellationRequest(cancellation_id=cancellation_id)
    reply = _call(
        intake, token or "dev-clerk", as_json, lambda s, o: s.GetCancellation(request, **o)
    )
    c = reply.cancellation
    if as_json:
        print_json({"cancellation": _cancellation_json(c)})
        return
    print(f"cancellation {c.id}: {CANCELLATION_STATES.get(c.state, 'unspecified')}")
    print(f"order {c.order_id}")
    print(f"reason {c.reason_code}, requested {calls.when(c.requested_at)} by {c.requested_by}")
    if c.decline_reason:
        print(f"declined: {c.decline_reason}")
    if c.rolled_back:
        print(f"device rolled back to configuration version {c.rolled_back_to}")
    if c.detail:
        print(c.detail)


@cancellation_app.command("list")
def cancellation_list(
    order_id: Annotated[str, typer.Option("--order", help="only this order's")] = "",
    page_size: PageOpt = 50,
    page_token: PageTokenOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancellation requests, newest first."""
    request = pb.ListCancellationsRequest(
        order_id=order_id, page_size=page_size, page_token=page_token
    )
    reply = _call(
        intake, token or "dev-clerk", as_json, lambda s, o: s.ListCancellations(request, **o)
    )
    if as_json:
        print_json(
            {
                "cancellations": [_cancellation_json(c) for c in reply.cancellations],
                "next_page_token": reply.next_page_token,
            }
        )
        return
    rows = [
        [
            c.id,
            c.order_id,
            CANCELLATION_STATES.get(c.state, "unspecified"),
            c.reason_code,
            calls.when(c.requested_at),
            c.requested_by,
            c.decline_reason or ("rolled back" if c.rolled_back else ""),
        ]
        for c in reply.cancellations
    ]
    print(table(("id", "order", "state", "reason", "requested", "by", "outcome"), rows))
    _more(reply.next_page_token)


# --- order jeopardy --------------------------------------------------------------------------


def order_jeopardy(
    business_type: Annotated[str, typer.Option("--type", help="business type id")] = "",
    page_size: PageOpt = 50,
    page_token: PageTokenOpt = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders in jeopardy: a milestone past its due time (creation + the SLA) and not
    reached, oldest due first."""
    request = pb.ListJeopardyRequest(
        business_type=business_type, page_size=page_size, page_token=page_token
    )
    reply = _call(intake, token or "dev-clerk", as_json, lambda s, o: s.ListJeopardy(request, **o))
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [
            e.order.id,
            e.order.business_type,
            state_name(e.order.state),
            e.milestone,
            calls.when(e.due_at),
            calls.when(e.raised_at),
        ]
        for e in reply.entries
    ]
    print(table(("order", "type", "state", "milestone late", "due", "raised"), rows))
    _more(reply.next_page_token)
