"""`orderline ticket …` and `orderline anomaly list`: device-monitor's maintenance tickets
(TMF621) and anomaly records for root-cause analysis (docs/device-health.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_cli import calls
from orderline_cli.devices import CATEGORIES, _name, _parse, _texts
from orderline_cli.output import fail, print_json, table, to_json

ticket_app = typer.Typer(
    help="Maintenance tickets: list, show, take in hand, resolve with codes, close.",
    no_args_is_help=True,
)
anomaly_app = typer.Typer(
    help="Anomaly records for root-cause analysis, by device model, category and period.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
MonitorOpt = Annotated[str | None, typer.Option("--device-monitor", help="host:port")]
NoteOpt = Annotated[str, typer.Option("--note", help="what was done or found")]


def register(app: typer.Typer) -> None:
    app.add_typer(ticket_app, name="ticket")
    app.add_typer(anomaly_app, name="anomaly")


# TMF621 names, as the service's docs and the text output show them.
TICKET_STATES: dict[str, int] = {
    "acknowledged": device_pb2.TICKET_STATE_ACKNOWLEDGED,
    "inProgress": device_pb2.TICKET_STATE_IN_PROGRESS,
    "resolved": device_pb2.TICKET_STATE_RESOLVED,
    "closed": device_pb2.TICKET_STATE_CLOSED,
}
_STATE_NAMES = {number: name for name, number in TICKET_STATES.items()}
# --state accepts the TMF621 name in any case, with or without the underscore.
_STATE_KEYS = {name.lower(): number for name, number in TICKET_STATES.items()} | {
    "in_progress": device_pb2.TICKET_STATE_IN_PROGRESS
}


def _state(number: int) -> str:
    return _STATE_NAMES.get(number, "unspecified")


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call(
        "device-monitor", device_pb2_grpc.DeviceHealthServiceStub, address, token, as_json, call
    )


def _when(ts: Any) -> str:
    return calls.when(ts, "%m-%d %H:%M:%S")


def ticket_json(ticket: device_pb2.Ticket) -> dict[str, Any]:
    """The ticket as JSON with its states by their TMF621 names, as the text shows them."""
    data = to_json(ticket)
    data["state"] = _state(ticket.state)
    for step, note in zip(data.get("history", []), ticket.history, strict=True):
        step["state"] = _state(note.state)
    return data


TICKET_COLUMNS = ("ticket", "device", "state", "reason", "category", "opened", "description")
# Never cut: the id to copy, the device, the state, the reason and when it opened.
TICKET_KEEP = (0, 1, 2, 3, 5)


def _ticket_row(t: device_pb2.Ticket) -> list[str]:
    return [
        t.id,
        t.device_id,
        _state(t.state),
        t.reason_code,
        _name(CATEGORIES, t.category) if t.category else "-",
        _when(t.opened_at),
        _texts(t.description)[0] if t.description else "-",
    ]


def _ticket_lines(verb: str, t: device_pb2.Ticket) -> None:
    if verb:
        print(f"{verb}:")
    print(table(TICKET_COLUMNS, [_ticket_row(t)], keep=TICKET_KEEP))
    for line in _texts(t.description)[1:]:
        print(line)
    if t.order_id:
        print(f"order: {t.order_id}")
    if t.alarm_id:
        print(f"alarm: {t.alarm_id}")
    if t.anomaly_ids:
        print(f"anomalies: {', '.join(t.anomaly_ids)}")
    for a in t.actions_tried:
        detail = f": {a.detail}" if a.detail else ""
        print(f"tried {a.action} at {_when(a.at)}: {a.outcome}{detail}")
    if t.root_cause_code:
        print(f"root cause: {t.root_cause_code}  corrective action: {t.corrective_action_code}")
    if t.resolution_note:
        print(f"resolution: {t.resolution_note}")
    if t.state == device_pb2.TICKET_STATE_CLOSED:
        print(f"closed by {t.closed_by} at {_when(t.closed_at)} ({t.close_reason})")
    if t.history:
        print("\nhistory")
        rows = [[_when(n.at), _state(n.state), n.by, n.text or "-"] for n in t.history]
        print(table(("at", "state", "by", "note"), rows, keep=(0, 1)))


# --- ticket -----------------------------------------------------------------------------------


@ticket_app.command("list")
def ticket_list(
    device: Annotated[str, typer.Option("--device", help="only this device")] = "",
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="acknowledged, inProgress, resolved or closed; repeatable"),
    ] = None,
    page_size: Annotated[int, typer.Option("--page-size", help="0: the server's default")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tickets, newest first; a page token continues the same list."""
    request = device_pb2.ListTicketsRequest(
        device_id=device,
        states=_parse("--state", state, _STATE_KEYS, as_json),
        page_size=page_size,
        page_token=page_token,
    )
    reply = _call(
        monitor, token or "dev-engineer", as_json, lambda s, m: s.ListTickets(request, **m)
    )
    if as_json:
        print_json(
            {
                "tickets": [ticket_json(t) for t in reply.tickets],
                "next_page_token": reply.next_page_token,
            }
        )
        return
    print(table(TICKET_COLUMNS, [_ticket_row(t) for t in reply.tickets], keep=TICKET_KEEP))
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


@ticket_app.command("get")
def ticket_get(
    ticket_id: str,
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One ticket with its actions tried, codes and history."""
    request = device_pb2.GetTicketRequest(ticket_id=ticket_id)
    reply = _call(monitor, token or "dev-engineer", as_json, lambda s, m: s.GetTicket(request, **m))
    if as_json:
        print_json({"ticket": ticket_json(reply.ticket)})
        return
    _ticket_lines("", reply.ticket)


def _moved(verb: str, reply: Any, as_json: bool) -> None:
    if as_json:
        print_json({"ticket": ticket_json(reply.ticket)})
        return
    _ticket_lines(verb, reply.ticket)


@ticket_app.command("progress")
def ticket_progress(
    ticket_id: str,
    note: NoteOpt = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take an acknowledged ticket in hand: inProgress (engineer, maintenance)."""
    request = device_pb2.ProgressTicketRequest(ticket_id=ticket_id, note=note)
    reply = _call(
        monitor, token or "dev-maintenance", as_json, lambda s, m: s.ProgressTicket(request, **m)
    )
    _moved("in progress", reply, as_json)


@ticket_app.command("resolve")
def ticket_resolve(
    ticket_id: str,
    root_cause: Annotated[
        str, typer.Option("--root-cause", help="a root-cause code, e.g. POOR_COOLING")
    ] = "",
    action: Annotated[
        str, typer.Option("--action", help="a corrective-action code, e.g. COOLING_RESTORED")
    ] = "",
    note: NoteOpt = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve a ticket in progress with its root cause and corrective action (codes)."""
    request = device_pb2.ResolveTicketRequest(
        ticket_id=ticket_id, root_cause_code=root_cause, corrective_action_code=action, note=note
    )
    reply = _call(
        monitor, token or "dev-maintenance", as_json, lambda s, m: s.ResolveTicket(request, **m)
    )
    _moved("resolved", reply, as_json)


@ticket_app.command("close")
def ticket_close(
    ticket_id: str,
    note: NoteOpt = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Confirm a resolved ticket's device works: closed, and the device's maintenance ends.
    Four-eyes: not by the person who resolved it (telemetry confirming the device healthy
    closes it too)."""
    request = device_pb2.CloseTicketRequest(ticket_id=ticket_id, note=note)
    reply = _call(
        monitor, token or "dev-maintenance", as_json, lambda s, m: s.CloseTicket(request, **m)
    )
    _moved("closed", reply, as_json)


# --- anomaly ----------------------------------------------------------------------------------


def _instant(option: str, value: str, as_json: bool) -> Timestamp | None:
    """An ISO 8601 date or time (UTC when it names no zone) as a Timestamp."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(
            "INVALID_ARGUMENT",
            f"{option} {value!r}: a date or time such as 2026-12-07 or 2026-12-07T08:00",
            as_json=as_json,
            exit_code=2,
        )
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


ANOMALY_COLUMNS = (
    "anomaly",
    "device",
    "model",
    "category",
    "first",
    "last",
    "ticket",
    "root cause",
)


@anomaly_app.command("list")
def anomaly_list(
    model: Annotated[str, typer.Option("--model", help="only this device model")] = "",
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="e.g. thermal, line, safety; repeatable"),
    ] = None,
    since: Annotated[
        str, typer.Option("--from", help="first seen at or after (ISO date or time, UTC)")
    ] = "",
    before: Annotated[str, typer.Option("--to", help="first seen before (ISO date or time)")] = "",
    device: Annotated[str, typer.Option("--device", help="only this device")] = "",
    page_size: Annotated[int, typer.Option("--page-size", help="0: the server's default")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Anomaly records, newest first, by device model, category and period."""
    request = device_pb2.ListAnomaliesRequest(
        device_model=model,
        categories=_parse("--category", category, CATEGORIES, as_json),
        device_id=device,
        page_size=page_size,
        page_token=page_token,
    )
    start = _instant("--from", since, as_json)
    if start is not None:
        request.first_seen_from.CopyFrom(start)
    end = _instant("--to", before, as_json)
    if end is not None:
        request.first_seen_before.CopyFrom(end)
    reply = _call(
        monitor, token or "dev-engineer", as_json, lambda s, m: s.ListAnomalies(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [
            a.id,
            a.device_id,
            a.device_model or "-",
            _name(CATEGORIES, a.category),
            _when(a.first_seen_at),
            _when(a.last_seen_at),
            a.ticket_id or "-",
            (f"{a.root_cause_code} / {a.corrective_action_code}" if a.root_cause_code else "-"),
        ]
        for a in reply.anomalies
    ]
    # Never cut: the anomaly's and the ticket's ids (to copy) and the device.
    print(table(ANOMALY_COLUMNS, rows, keep=(0, 1, 6)))
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")
