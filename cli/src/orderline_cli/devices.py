"""`orderline alarm …` and `orderline device …`: device-monitor's alarms, a device's condition
and whether an operation may start on it (docs/device-health.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import fail, print_json, table, to_json

alarm_app = typer.Typer(
    help="Device alarms: list them, acknowledge one, clear one with a reason.",
    no_args_is_help=True,
)
device_app = typer.Typer(
    help="A device's condition, and whether an operation may start on it.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
MonitorOpt = Annotated[str | None, typer.Option("--device-monitor", help="host:port")]


def register(app: typer.Typer) -> None:
    app.add_typer(alarm_app, name="alarm")
    app.add_typer(device_app, name="device")


# --- names: the text shows the short lower-case name of each enum value ------------------------


def _names(enum: Any, prefix: str) -> dict[str, int]:
    return {
        name[len(prefix) :].lower(): number
        for name, number in enum.items()
        if not name.endswith("_UNSPECIFIED")
    }


SEVERITIES = _names(device_pb2.PerceivedSeverity, "PERCEIVED_SEVERITY_")
STATES = _names(device_pb2.AlarmState, "ALARM_STATE_")
CATEGORIES = _names(device_pb2.HealthCategory, "HEALTH_CATEGORY_")
CONDITIONS = _names(device_pb2.DeviceCondition, "DEVICE_CONDITION_")
PHASES = _names(device_pb2.FailingPhase, "FAILING_PHASE_")


def _name(names: dict[str, int], number: int) -> str:
    for name, value in names.items():
        if value == number:
            return name.replace("_", " ")
    return "unspecified" if number == 0 else str(number)


def _parse(
    option: str, values: list[str] | None, names: dict[str, int], as_json: bool
) -> list[Any]:
    """Short names (`major`, `thermal`; repeated or comma-separated) -> enum numbers."""
    numbers: list[Any] = []
    for value in values or []:
        for part in value.split(","):
            key = part.strip().lower().replace(" ", "_").replace("-", "_")
            if key not in names:
                fail(
                    "INVALID_ARGUMENT",
                    f"{option} {part.strip()!r}: one of {', '.join(names)}",
                    as_json=as_json,
                    exit_code=2,
                )
            numbers.append(names[key])
    return numbers


def _texts(text: str) -> list[str]:
    """A server text "English | 中文" as its two lines; any other text as it is."""
    return [part.strip() for part in text.split(" | ") if part.strip()] or [text]


# --- calls ------------------------------------------------------------------------------------


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call(
        "device-monitor", device_pb2_grpc.DeviceHealthServiceStub, address, token, as_json, call
    )


def _when(ts: Any) -> str:
    """Alarms change within minutes: the time of day to the second, with the date."""
    return calls.when(ts, "%m-%d %H:%M:%S")


ALARM_COLUMNS = ("alarm", "device", "category", "severity", "state", "ack", "raised", "detail")


def _alarm_row(a: device_pb2.Alarm) -> list[str]:
    detail = a.detail or "-"
    if a.is_root_cause:
        detail = f"root cause: {detail}"
    elif a.suppressed:
        detail = f"under {a.parent_alarm_id}: {detail}"
    if a.repeat_count:
        detail = f"{detail} (repeated {a.repeat_count} times)"
    return [
        a.id,
        a.device_id,
        _name(CATEGORIES, a.category),
        _name(SEVERITIES, a.perceived_severity),
        _name(STATES, a.state),
        "yes" if a.acknowledged else "no",
        _when(a.raised_at),
        detail,
    ]


def _alarm_lines(verb: str, a: device_pb2.Alarm) -> None:
    print(f"{verb}:")
    print(table(ALARM_COLUMNS, [_alarm_row(a)]))
    if a.probable_cause:
        print(f"probable cause: {a.probable_cause}")
    if a.acknowledged:
        print(f"acknowledged by {a.acknowledged_by or '-'} at {_when(a.acknowledged_at)}")
    if a.state == device_pb2.ALARM_STATE_CLEARED:
        by = a.cleared_by or "the evaluator"
        reason = f": {a.clear_reason}" if a.clear_reason else ""
        print(f"cleared by {by} at {_when(a.cleared_at)}{reason}")


# --- alarm ------------------------------------------------------------------------------------


@alarm_app.command("list")
def alarm_list(
    device: Annotated[str, typer.Option("--device", help="only this device")] = "",
    severity: Annotated[
        list[str] | None,
        typer.Option("--severity", help="warning, minor, major or critical; repeatable"),
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="raised (open: matches updated too), updated or cleared"),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="e.g. thermal, line, safety, communication; repeatable"),
    ] = None,
    acknowledged: Annotated[
        str, typer.Option("--acknowledged", help="yes or no; not given: either")
    ] = "",
    page_size: Annotated[int, typer.Option("--page-size", help="0: the server's default")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Alarms, newest first, with filters; a page token continues the same list."""
    request = device_pb2.ListAlarmsRequest(
        device_id=device,
        page_size=page_size,
        page_token=page_token,
        severities=_parse("--severity", severity, SEVERITIES, as_json),
        states=_parse("--state", state, STATES, as_json),
        categories=_parse("--category", category, CATEGORIES, as_json),
    )
    if acknowledged:
        if acknowledged.lower() not in ("yes", "no"):
            fail("INVALID_ARGUMENT", "--acknowledged is yes or no", as_json=as_json, exit_code=2)
        request.acknowledged = acknowledged.lower() == "yes"
    token = token or "dev-engineer"
    reply = _call(monitor, token, as_json, lambda s, m: s.ListAlarms(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    print(table(ALARM_COLUMNS, [_alarm_row(a) for a in reply.alarms]))
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


@alarm_app.command("ack")
def alarm_ack(
    alarm_id: str,
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take an open alarm in hand (engineer, maintenance); the first acknowledgement stands."""
    request = device_pb2.AcknowledgeAlarmRequest(alarm_id=alarm_id)
    reply = _call(
        monitor, token or "dev-engineer", as_json, lambda s, m: s.AcknowledgeAlarm(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    _alarm_lines("acknowledged", reply.alarm)


@alarm_app.command("clear")
def alarm_clear(
    alarm_id: str,
    reason: Annotated[str, typer.Option("--reason", help="why it is handled (required)")] = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clear an open alarm as handled, with a reason (maintenance); a lasting fault rises again."""
    request = device_pb2.ClearAlarmRequest(alarm_id=alarm_id, reason=reason)
    reply = _call(
        monitor, token or "dev-maintenance", as_json, lambda s, m: s.ClearAlarm(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    _alarm_lines("cleared", reply.alarm)


# --- device -----------------------------------------------------------------------------------


def _health_lines(h: device_pb2.DeviceHealth) -> None:
    state = device_pb2.HealthState.Name(h.state).removeprefix("HEALTH_STATE_").lower()
    print(
        f"device {h.device_id}  condition {_name(CONDITIONS, h.condition)}  (health {state})  "
        f"last seen {_when(h.last_seen)}"
    )
    if not h.failing:
        print("failing: none")
        return
    print("\nfailing")
    rows = [
        [_name(CATEGORIES, f.category), _name(SEVERITIES, f.severity), _name(PHASES, f.phase)]
        for f in h.failing
    ]
    print(table(("category", "severity", "phase"), rows))


@device_app.command("health")
def device_health(
    device_id: str,
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A device's condition, its failing categories and its open alarms."""
    token = token or "dev-engineer"
    request = device_pb2.GetDeviceHealthRequest(device_id=device_id)
    health = _call(monitor, token, as_json, lambda s, m: s.GetDeviceHealth(request, **m)).health
    alarms: list[device_pb2.Alarm] = []
    listing = device_pb2.ListAlarmsRequest(device_id=device_id, only_open=True, page_size=500)
    while True:
        page = _call(monitor, token, as_json, lambda s, m: s.ListAlarms(listing, **m))
        alarms.extend(page.alarms)
        if not page.next_page_token:
            break
        listing.page_token = page.next_page_token
    if as_json:
        print_json({"health": to_json(health), "open_alarms": [to_json(a) for a in alarms]})
        return
    _health_lines(health)
    if not alarms:
        print("open alarms: none")
        return
    print("\nopen alarms")
    print(table(ALARM_COLUMNS, [_alarm_row(a) for a in alarms]))


@device_app.command("fitness")
def device_fitness(
    device_id: str,
    order: Annotated[
        str, typer.Option("--order", help="the order the work is for (recorded with the check)")
    ] = "",
    monitor: MonitorOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """May an operation start on the device now, and if not, why (English and 中文)."""
    request = device_pb2.CheckFitnessRequest(device_id=device_id, order_id=order)
    reply = _call(
        monitor, token or "dev-engineer", as_json, lambda s, m: s.CheckFitness(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    if reply.fit:
        print(f"fit: yes, an operation may start on {device_id} | 可以在 {device_id} 上开始操作")
    else:
        print(f"fit: no, no operation may start on {device_id} | 不可在 {device_id} 上开始操作")
    _health_lines(reply.health)
    details = list(reply.details)
    if not details and reply.reasons:  # a server without details: its codes
        details = [device_pb2.FitnessReason(code=code) for code in reply.reasons]
    if details:
        print("\nwhy not")
    for d in details:
        category = f" ({_name(CATEGORIES, d.category)})" if d.category else ""
        print(f"{d.code}{category}")
        for line in _texts(d.text) if d.text else []:
            print(f"  {line}")
        if d.alarm_ids:
            print(f"  alarms: {', '.join(d.alarm_ids)}")
