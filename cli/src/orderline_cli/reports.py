"""`orderline report orders|stages|reviews|devices|customers|daily`: the management reports
(docs/reporting.md).

Every verb takes the same window (`--period day|week|month`, `--from`/`--to` local dates,
`--tz`) and `--lang zh-CN|en`. `--format table` (the default) prints the report's tables as the
service labels them; `--format csv|html` writes the service's export (to stdout or `--output
FILE`); `--json` prints the report's own RPC reply. Unknown periods, formats and languages are
refused by the service (INVALID_ARGUMENT naming each field), so the CLI and the API agree.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from orderline.reporting.v1 import reporting_pb2 as pb
from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import print_json, table, to_json

JsonOpt = Annotated[bool, typer.Option("--json", help="the report's RPC reply as JSON")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
ReportingOpt = Annotated[str | None, typer.Option("--reporting", help="host:port")]
PeriodOpt = Annotated[
    str, typer.Option("--period", help="buckets of the orders table: day, week or month")
]
FromOpt = Annotated[str, typer.Option("--from", help="first local day, YYYY-MM-DD")]
ToOpt = Annotated[str, typer.Option("--to", help="last local day, YYYY-MM-DD (default today)")]
TzOpt = Annotated[str, typer.Option("--tz", help="IANA time zone (default Asia/Shanghai)")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv or html")]
LangOpt = Annotated[str, typer.Option("--lang", help="zh-CN or en")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="write csv or html to this file")
]

Call = Callable[[Any, dict[str, Any]], Any]

# Each verb: the report's own RPC (for --json) given the query.
_RPCS: dict[str, Callable[[pb.ReportQuery], Call]] = {
    "orders": lambda q: (
        lambda stub, kw: stub.GetOrderReport(pb.GetOrderReportRequest(query=q), **kw)
    ),
    "stages": lambda q: (
        lambda stub, kw: stub.GetStageReport(pb.GetStageReportRequest(query=q), **kw)
    ),
    "reviews": lambda q: (
        lambda stub, kw: stub.GetReviewReport(pb.GetReviewReportRequest(query=q), **kw)
    ),
    "devices": lambda q: (
        lambda stub, kw: stub.GetDeviceReport(pb.GetDeviceReportRequest(query=q), **kw)
    ),
    "customers": lambda q: (
        lambda stub, kw: stub.GetCustomerReport(pb.GetCustomerReportRequest(query=q), **kw)
    ),
}

_HELP = {
    "orders": "Orders created in the window by period, business type and state.",
    "stages": "Lead time of every stage (p50/p90/p99), the slowest stage, SLA breaches and "
    "jeopardy, activation, fallout and adjustment rates.",
    "reviews": "First-pass review rate and the top rejection, information and queue reasons.",
    "devices": "Device faults by model and category with mean time to repair.",
    "customers": "Follow-up outcomes, satisfaction, trouble cases and feedback.",
}


def register(report_app: typer.Typer) -> None:
    for name in _RPCS:
        report_app.command(name, help=_HELP[name])(_verb(name))
    report_app.command("daily")(report_daily)


def _call(address: str | None, token: str | None, as_json: bool, call: Call) -> Any:
    stub = reporting_pb2_grpc.ReportingServiceStub
    return calls.call("reporting", stub, address, token or "dev-manager", as_json, call)


def print_csv_tables(text: str) -> None:
    """The export's CSV (blocks of a title line, a header line and rows) as plain tables."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    for i, block in enumerate(blocks):
        rows = list(csv.reader(io.StringIO(block)))
        title, header, body = rows[0][0], rows[1], rows[2:]
        if i:
            print()
        print(title)
        print(table(header, body or [["-"] * len(header)]))


def write_document(content: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        output.write_bytes(content)
        print(f"wrote {output} ({len(content)} bytes)", file=sys.stderr)


def _verb(name: str) -> Callable[..., None]:
    def run(
        period: PeriodOpt = "",
        start: FromOpt = "",
        end: ToOpt = "",
        tz: TzOpt = "",
        fmt: FormatOpt = "table",
        lang: LangOpt = "",
        output: OutputOpt = None,
        reporting: ReportingOpt = None,
        token: TokenOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        query = pb.ReportQuery(
            period=period, start_date=start, end_date=end, time_zone=tz, language=lang
        )
        if as_json:
            print_json(to_json(_call(reporting, token, True, _RPCS[name](query))))
            return
        # table prints the CSV export's tables; any other format is the service's to judge.
        reply = _call(
            reporting,
            token,
            False,
            lambda stub, kw: stub.ExportReport(
                pb.ExportReportRequest(
                    report=name, format="csv" if fmt == "table" else fmt, query=query
                ),
                **kw,
            ),
        )
        if fmt == "table":
            print_csv_tables(reply.content.decode())
        else:
            write_document(reply.content, output)

    run.__name__ = f"report_{name}"
    return run


def report_daily(
    day: Annotated[
        str, typer.Option("--day", help="YYYY-MM-DD: that day's document (default: the list)")
    ] = "",
    fmt: Annotated[str, typer.Option("--format", help="html or csv")] = "html",
    lang: LangOpt = "",
    output: OutputOpt = None,
    reporting: ReportingOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The daily reports produced on schedule: the list, or one day's document with --day."""
    if not day:
        listed = _call(
            reporting,
            token,
            as_json,
            lambda stub, kw: stub.ListDailyReports(pb.ListDailyReportsRequest(), **kw),
        )
        if as_json:
            print_json(to_json(listed))
            return
        print(
            table(
                ("day", "language", "format", "bytes", "sha256", "generated"),
                [
                    [
                        r.day,
                        r.language,
                        r.format,
                        str(r.size_bytes),
                        r.sha256[:16],
                        calls.when(r.generated_at),
                    ]
                    for r in listed.reports
                ],
            )
        )
        return
    got = _call(
        reporting,
        token,
        as_json,
        lambda stub, kw: stub.GetDailyReport(
            pb.GetDailyReportRequest(day=day, language=lang, format=fmt), **kw
        ),
    )
    if as_json:
        print_json(to_json(got))
        return
    write_document(got.content, output)
