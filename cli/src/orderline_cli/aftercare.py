"""`orderline order note|log`, `orderline followup list|record`, `orderline case list|close`:
the order's communication log, the follow-up visits after completion and the trouble cases
a reported problem opens (intake's OrderService)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.order.v1 import order_pb2 as pb
from orderline.order.v1 import order_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import fail, print_json, table, to_json

followup_app = typer.Typer(
    help="Follow-up visits after completion: list (--overdue), record an outcome.",
    no_args_is_help=True,
)
case_app = typer.Typer(
    help="Trouble cases opened by follow-ups: list, close.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
IntakeOpt = Annotated[str | None, typer.Option("--intake", help="host:port")]
PageOpt = Annotated[int, typer.Option("--page-size", help="1..500")]

CHANNELS = {
    "call": pb.COMMUNICATION_CHANNEL_CALL,
    "sms": pb.COMMUNICATION_CHANNEL_SMS,
    "note": pb.COMMUNICATION_CHANNEL_NOTE,
}
DIRECTIONS = {
    "inbound": pb.COMMUNICATION_DIRECTION_INBOUND,
    "outbound": pb.COMMUNICATION_DIRECTION_OUTBOUND,
}
OUTCOMES = {
    "satisfied": pb.FOLLOW_UP_OUTCOME_SATISFIED,
    "problem": pb.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED,
    "problem_reported": pb.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED,
    "not_reached": pb.FOLLOW_UP_OUTCOME_NOT_REACHED,
}
CASE_STATES = {"open": pb.CASE_STATE_OPEN, "closed": pb.CASE_STATE_CLOSED, "": 0}


def register(app: typer.Typer, order_app: typer.Typer) -> None:
    order_app.command("note")(order_note)
    order_app.command("log")(order_log)
    app.add_typer(followup_app, name="followup")
    app.add_typer(case_app, name="case")


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call("intake", order_pb2_grpc.OrderServiceStub, address, token, as_json, call)


def _choice(value: str, allowed: dict[str, Any], option: str, as_json: bool) -> Any:
    if value.lower() not in allowed:
        fail(
            "INVALID_ARGUMENT",
            f"{option}: one of {', '.join(k for k in allowed if k)}",
            as_json=as_json,
        )
    return allowed[value.lower()]


def _name(enum: Any, number: int, prefix: str) -> str:
    return str(enum.Name(number)).removeprefix(prefix).lower()


# --- communication log ---------------------------------------------------------------------


def order_note(
    order_id: str,
    text: str,
    channel: Annotated[str, typer.Option("--channel", help="call, sms or note")] = "note",
    direction: Annotated[str, typer.Option("--direction", help="inbound or outbound")] = "",
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Log a call, an SMS or a note on an order (clerk); phone numbers in it are masked."""
    request = pb.AddCommunicationRequest(
        order_id=order_id,
        channel=_choice(channel, CHANNELS, "--channel", as_json),
        # Empty: left to the server, which names the missing field with the others.
        direction=(
            _choice(direction, DIRECTIONS, "--direction", as_json)
            if direction
            else pb.COMMUNICATION_DIRECTION_UNSPECIFIED
        ),
        text=text,
    )
    reply = _call(
        intake, token or "dev-clerk", as_json, lambda s, m: s.AddCommunication(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    c = reply.communication
    print(f"logged {c.id} on {c.order_id} at {calls.when(c.at)}")


def _list_communications(
    request: pb.ListCommunicationsRequest,
) -> Callable[[Any, dict[str, Any]], Any]:
    return lambda stub, m: stub.ListCommunications(request, **m)


def order_log(
    order_id: str,
    page_size: PageOpt = 0,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The order's communication log, oldest first, with the notices provisioning sent."""
    entries: list[pb.Communication] = []
    page_token = ""
    while True:
        request = pb.ListCommunicationsRequest(
            order_id=order_id, page_size=page_size, page_token=page_token
        )
        reply = _call(intake, token or "dev-clerk", as_json, _list_communications(request))
        entries.extend(reply.communications)
        page_token = reply.next_page_token
        if not page_token:
            break
    if as_json:
        print_json([to_json(c) for c in entries])
        return
    rows = [
        (
            calls.when(c.at),
            _name(pb.CommunicationChannel, c.channel, "COMMUNICATION_CHANNEL_"),
            _name(pb.CommunicationDirection, c.direction, "COMMUNICATION_DIRECTION_"),
            c.actor,
            c.text,
        )
        for c in entries
    ]
    print(table(("at", "channel", "direction", "actor", "text"), rows, keep=(0, 1, 2)))


# --- follow-ups ------------------------------------------------------------------------------


@followup_app.command("list")
def followup_list(
    order_id: Annotated[str, typer.Option("--order", help="only this order's")] = "",
    overdue: Annotated[bool, typer.Option("--overdue", help="due and not recorded")] = False,
    page_size: PageOpt = 0,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow-up visits, earliest due first."""
    request = pb.ListFollowUpsRequest(order_id=order_id, overdue=overdue, page_size=page_size)
    reply = _call(intake, token or "dev-clerk", as_json, lambda s, m: s.ListFollowUps(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        (
            f.id,
            f.order_id,
            f"day {f.day}",
            calls.when(f.due_at),
            _name(pb.FollowUpOutcome, f.outcome, "FOLLOW_UP_OUTCOME_").replace("unspecified", "-"),
            "OVERDUE" if f.overdue else "",
        )
        for f in reply.follow_ups
    ]
    print(table(("follow-up", "order", "day", "due", "outcome", ""), rows, keep=(0, 1)))


@followup_app.command("record")
def followup_record(
    follow_up_id: str,
    outcome: Annotated[str, typer.Option("--outcome", help="satisfied, problem or not_reached")],
    note: Annotated[str, typer.Option("--note", help="required with a problem")] = "",
    device: Annotated[bool, typer.Option("--device", help="the problem is the device")] = False,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a visit's outcome, once; a problem opens a trouble case."""
    request = pb.RecordFollowUpRequest(
        follow_up_id=follow_up_id,
        outcome=_choice(outcome, OUTCOMES, "--outcome", as_json),
        note=note,
        device_problem=device,
    )
    reply = _call(
        intake, token or "dev-clerk", as_json, lambda s, m: s.RecordFollowUp(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    print(f"recorded {reply.follow_up.id}: {outcome}")
    if reply.trouble_case.id:
        print(f"opened case {reply.trouble_case.id} on order {reply.trouble_case.order_id}")


# --- cases -----------------------------------------------------------------------------------


@case_app.command("list")
def case_list(
    order_id: Annotated[str, typer.Option("--order", help="only this order's")] = "",
    state: Annotated[str, typer.Option("--state", help="open or closed")] = "",
    page_size: PageOpt = 0,
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trouble cases, oldest first."""
    request = pb.ListCasesRequest(
        order_id=order_id,
        state=_choice(state, CASE_STATES, "--state", as_json),
        page_size=page_size,
    )
    reply = _call(intake, token or "dev-clerk", as_json, lambda s, m: s.ListCases(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        (
            c.id,
            c.order_id,
            _name(pb.CaseState, c.state, "CASE_STATE_"),
            "device" if c.device_problem else "",
            calls.when(c.opened_at),
            c.description,
        )
        for c in reply.cases
    ]
    print(table(("case", "order", "state", "", "opened", "description"), rows, keep=(0, 1)))


@case_app.command("close")
def case_close(
    case_id: str,
    resolution: Annotated[str, typer.Option("--resolution", help="how it was resolved")],
    intake: IntakeOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a trouble case with its resolution (clerk, maintenance)."""
    request = pb.CloseCaseRequest(case_id=case_id, resolution=resolution)
    reply = _call(intake, token or "dev-clerk", as_json, lambda s, m: s.CloseCase(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    print(f"closed {reply.trouble_case.id} ({reply.trouble_case.closed_by})")
