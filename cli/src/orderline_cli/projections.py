"""`orderline report digest|rebuild`: the reporting projection's digest at its stream position,
and a rebuild from every stream checked against it (docs/reporting.md); and, from
orderline_cli.reports, the report verbs (`orders`, `stages`, `reviews`, `devices`,
`customers`, `daily`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.reporting.v1 import reporting_pb2 as pb
from orderline.reporting.v1 import reporting_pb2_grpc
from orderline_cli import calls, reports
from orderline_cli.output import print_json, table, to_json

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
ReportingOpt = Annotated[str | None, typer.Option("--reporting", help="host:port")]


def register(report_app: typer.Typer) -> None:
    report_app.command("digest")(report_digest)
    report_app.command("rebuild")(report_rebuild)
    # Registered after main's own `report orders`, so this one (with the window, --format,
    # --lang and --output) is the one the command runs.
    reports.register(report_app)


def _call(
    address: str | None,
    token: str,
    as_json: bool,
    timeout: float,
    call: Callable[[Any, dict[str, Any]], Any],
) -> Any:
    stub = reporting_pb2_grpc.ReportingServiceStub
    return calls.call("reporting", stub, address, token, as_json, call, timeout=timeout)


def _positions(position: Any) -> str:
    return table(
        ("stream", "sequence", "events applied"),
        [[p.stream, str(p.sequence), str(p.events_applied)] for p in position],
    )


def report_digest(
    recompute: Annotated[
        bool, typer.Option("--recompute", help="also recompute it from every row (full scan)")
    ] = False,
    reporting: ReportingOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The projection's digest and the stream position it belongs to."""
    reply = _call(
        reporting,
        token or "dev-manager",
        as_json,
        10,
        lambda stub, kw: stub.GetProjectionDigest(
            pb.GetProjectionDigestRequest(recompute=recompute), **kw
        ),
    )
    if as_json:
        print_json(to_json(reply))
        return
    print(f"digest: {reply.digest}")
    print(f"checkpoint {reply.checkpoint}, {reply.events_applied} events applied\n")
    print(_positions(reply.position))
    if recompute:
        same = "the same" if reply.recomputed_digest == reply.digest else "DIFFERENT"
        print(f"\nrecomputed from every row: {reply.recomputed_digest} ({same})")


def report_rebuild(
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="then put the rebuilt projection in place of the live one (one transaction)",
        ),
    ] = False,
    reporting: ReportingOpt = None,
    token: TokenOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds")] = 600,
    as_json: JsonOpt = False,
) -> None:
    """Replays every stream from the start into a scratch projection and compares its digest
    with the live one at every recorded position; exits 1 when one differs. With --replace,
    the rebuilt projection then takes the live one's place, repairing what differed: the
    exit code is 0 once it has."""
    reply = _call(
        reporting,
        token or "dev-manager",
        as_json,
        timeout,
        lambda stub, kw: stub.RebuildProjections(
            pb.RebuildProjectionsRequest(replace=replace), **kw
        ),
    )
    if as_json:
        print_json(to_json(reply))
    else:
        print(
            f"replayed {reply.events_replayed} events ({reply.events_skipped} skipped); "
            f"digest {reply.digest}\n"
        )
        print(_positions(reply.position))
        print(
            f"\ncheckpoints compared: {reply.checkpoints_compared}, matched: "
            f"{reply.checkpoints_matched}, not comparable (live had a gap): "
            f"{reply.checkpoints_not_comparable}, different: {len(reply.mismatches)}"
        )
        for m in reply.mismatches:
            print(f"  checkpoint {m.checkpoint}: live {m.live_digest}, rebuilt {m.rebuilt_digest}")
        print("consistent" if reply.consistent else "INCONSISTENT")
        if reply.replaced:
            print(f"\nthe live projection is now the rebuilt one, digest {reply.digest}")
    if not reply.consistent and not reply.replaced:
        raise typer.Exit(1)
