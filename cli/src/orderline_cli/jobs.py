"""`orderline job get|list|configs|confirm|feedback` and `orderline fallout
list|retry|skip|rollback|abort`: provisioning jobs, the customer's confirmation and feedback the
clerk records after the call, and the fallout queue of jobs that wait for a person
(services/provisioning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import fail, print_json, table, to_json

job_app = typer.Typer(help="Provisioning jobs: one, or a page of them.", no_args_is_help=True)
fallout_app = typer.Typer(
    help="Jobs waiting for a person: list them oldest first; retry, skip a test (engineers), "
    "roll back, abort.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
ProvisioningOpt = Annotated[str | None, typer.Option("--provisioning", help="host:port")]

STATES = {
    "running": pb.JOB_STATE_RUNNING,
    "held": pb.JOB_STATE_HELD,
    "completed": pb.JOB_STATE_COMPLETED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
}
STATE_NAMES = {v: k for k, v in STATES.items()}
CHANNELS = {
    "call": pb.CUSTOMER_CHANNEL_CALL,
    "sms": pb.CUSTOMER_CHANNEL_SMS,
    "visit": pb.CUSTOMER_CHANNEL_VISIT,
}
CHANNEL_NAMES = {v: k for k, v in CHANNELS.items()}
ChannelOpt = Annotated[
    str, typer.Option("--channel", help="how the customer was heard: call, sms or visit")
]


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
    app.add_typer(fallout_app, name="fallout")


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call(
        "provisioning", provisioning_pb2_grpc.ProvisioningServiceStub, address, token, as_json, call
    )


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _show(job: pb.ProvisioningJob) -> None:
    state = STATE_NAMES.get(job.state, "unspecified")
    print(f"job {job.id}  order {job.order_id}  device {job.device_id}  {job.business_type}")
    reason = f" ({job.reason})" if job.reason else ""
    print(f"  {state} at {job.step}{reason}")
    if job.detail:
        print(f"  {job.detail}")
    if job.alarm_id:
        print(f"  alarm {job.alarm_id}")
    if job.HasField("fallout_since"):
        print(f"  in the fallout queue since {calls.when(job.fallout_since)}")
    if job.fallout_retries:
        print(f"  retried {job.fallout_retries} time(s) from the fallout queue")
    for item in job.checklist:
        result = pb.ChecklistResult.Name(item.result).removeprefix("CHECKLIST_RESULT_").lower()
        print(f"  check {item.item}: {result}{' ' + item.reason if item.reason else ''}")
    for change in job.config_changes:
        print(
            f"  config {change.operation} v{change.previous_version} -> v{change.config_version}"
            f" ({change.idempotency_key})"
        )
    for r in job.test_results:
        print(f"  test {r.kind} round {r.round}: {'passed' if r.passed else 'FAILED'} {r.detail}")
    for s in job.skipped_tests:
        print(f"  test {s.kind} skipped by {s.skipped_by}: {s.reason}")
    if job.voucher_id:
        print(f"  voucher {job.voucher_id}")
    if job.HasField("confirmation"):
        c = job.confirmation
        print(
            f"  confirmed by the customer ({CHANNEL_NAMES.get(c.channel, '?')}), recorded by "
            f"{c.confirmed_by} at {calls.when(c.confirmed_at)}"
        )
    if job.HasField("feedback"):
        f = job.feedback
        comment = f": {f.comment}" if f.comment else ""
        print(
            f"  feedback {f.score}/5 ({CHANNEL_NAMES.get(f.channel, '?')}), recorded by "
            f"{f.recorded_by}{comment}"
        )


def _channel(channel: str, as_json: bool) -> Any:
    """The --channel value as the proto's enum; an unknown one fails like the server would."""
    if channel and channel not in CHANNELS:
        fail(
            "INVALID_ARGUMENT",
            f"--channel: one of {', '.join(CHANNELS)}",
            as_json=as_json,
            violations=[("channel", f"one of {', '.join(CHANNELS)}")],
        )
    return CHANNELS.get(channel, pb.CUSTOMER_CHANNEL_UNSPECIFIED)


@job_app.command("get")
def job_get(
    job_id: Annotated[str, typer.Argument(help="the job's id (or give --order)")] = "",
    order: Annotated[str, typer.Option("--order", help="the order's id instead")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One job: its state, step, checklist, configuration changes, tests and skips."""
    if bool(job_id) == bool(order):
        fail("INVALID_ARGUMENT", "give a job id or --order ORDER_ID (one of them)", as_json=as_json)
    request = pb.GetJobRequest(job_id=job_id, order_id=order)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.GetJob(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    _show(reply.job)


@job_app.command("list")
def job_list(
    state: Annotated[str, typer.Option("--state", help="running, held, completed, …")] = "",
    page_size: Annotated[int, typer.Option("--page-size")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs in creation order, a page at a time."""
    if state and state not in STATES:
        fail(
            "INVALID_ARGUMENT",
            f"--state: one of {', '.join(STATES)}",
            as_json=as_json,
            violations=[("state", f"one of {', '.join(STATES)}")],
        )
    request = pb.ListJobsRequest(
        state=STATES.get(state, pb.JOB_STATE_UNSPECIFIED),
        page_size=page_size,
        page_token=page_token,
    )
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.ListJobs(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [j.id, j.order_id, j.device_id, STATE_NAMES.get(j.state, "?"), j.step, j.reason]
        for j in reply.jobs
    ]
    print(table(("job", "order", "device", "state", "step", "reason"), rows))
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


@job_app.command("configs")
def job_configs(
    device_id: Annotated[str, typer.Argument(help="the device's id, e.g. CPE-0001")],
    page_size: Annotated[int, typer.Option("--page-size")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A device's configuration history, newest first: every apply, adjustment and rollback
    jobs made, its version, job, order, key and settings (the customer's number masked), and
    whether the job's rollback undid it."""
    request = pb.ListDeviceConfigurationsRequest(
        device_id=device_id, page_size=page_size, page_token=page_token
    )
    reply = _call(
        provisioning,
        token or "dev-engineer",
        as_json,
        lambda s, m: s.ListDeviceConfigurations(request, **m),
    )
    if as_json:
        print_json(to_json(reply))
        return
    if not reply.configurations:
        print(f"no configuration recorded for device {device_id}")
        return
    # One block per change: keys and job ids are long, a table would cut what one copies.
    for c in reply.configurations:
        print(
            f"v{c.previous_version} -> v{c.config_version}  {c.operation}  "
            f"{calls.when(c.recorded_at)}  order {c.order_id}  job {c.job_id}"
        )
        print(f"  key {c.idempotency_key}")
        if c.rolled_back:
            print(f"  rolled back ({c.rolled_back_by_key}) at {calls.when(c.rolled_back_at)}")
        if c.settings:
            settings = ", ".join(f"{k}={v}" for k, v in sorted(c.settings.items()))
            print(f"  {c.template}: {settings}")
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


@job_app.command("confirm")
def job_confirm(
    order_id: Annotated[str, typer.Argument(help="the order's id (or give --job)")] = "",
    job: Annotated[str, typer.Option("--job", help="the job's id instead")] = "",
    channel: ChannelOpt = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that the customer confirmed the service works (the clerk, after the call); once
    per order: the same again answers the same record."""
    request = pb.ConfirmActivationRequest(
        order_id=order_id, job_id=job, channel=_channel(channel, as_json)
    )
    reply = _call(
        provisioning, token or "dev-clerk", as_json, lambda s, m: s.ConfirmActivation(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    c = reply.confirmation
    print(
        f"order {c.order_id} (job {c.job_id}): confirmed by the customer "
        f"({CHANNEL_NAMES.get(c.channel, '?')}), recorded by {c.confirmed_by} at "
        f"{calls.when(c.confirmed_at)}"
    )


@job_app.command("feedback")
def job_feedback(
    order_id: Annotated[str, typer.Argument(help="the order's id (or give --job)")] = "",
    job: Annotated[str, typer.Option("--job", help="the job's id instead")] = "",
    score: Annotated[int, typer.Option("--score", help="satisfaction, 1 to 5")] = 0,
    comment: Annotated[str, typer.Option("--comment", help="at most 500 characters")] = "",
    channel: ChannelOpt = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the customer's satisfaction (1-5) and comment (the clerk, after the call); once
    per order."""
    request = pb.RecordFeedbackRequest(
        order_id=order_id,
        job_id=job,
        score=score,
        comment=comment,
        channel=_channel(channel, as_json),
    )
    reply = _call(
        provisioning, token or "dev-clerk", as_json, lambda s, m: s.RecordFeedback(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    f = reply.feedback
    comment_text = f": {f.comment}" if f.comment else ""
    print(
        f"order {f.order_id} (job {f.job_id}): feedback {f.score}/5 "
        f"({CHANNEL_NAMES.get(f.channel, '?')}), recorded by {f.recorded_by}{comment_text}"
    )


@fallout_app.command("list")
def fallout_list(
    page_size: Annotated[int, typer.Option("--page-size")] = 0,
    page_token: Annotated[str, typer.Option("--page-token")] = "",
    lang: Annotated[str, typer.Option("--lang", help="en or zh-CN")] = "en",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The jobs waiting for a person, oldest first, with their age, reason and actions."""
    request = pb.ListFalloutRequest(page_size=page_size, page_token=page_token)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.ListFallout(request, **m)
    )
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [e.job.id, e.job.order_id, _age(e.age_seconds), e.reason, ",".join(e.actions)]
        for e in reply.entries
    ]
    print(table(("job", "order", "age", "reason", "actions"), rows))
    for e in reply.entries:
        print(f"{e.job.id}: {e.texts.get(lang) or e.texts.get('en', '')}")
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


def _acted(verb: str, reply: Any, as_json: bool) -> None:
    if as_json:
        print_json(to_json(reply))
        return
    job = reply.job
    print(f"{verb} job {job.id}: {STATE_NAMES.get(job.state, '?')} at {job.step}")
    _show(job)


@fallout_app.command("retry")
def fallout_retry(
    job_id: str,
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the job again from the step that failed (engineer, manager)."""
    request = pb.RetryJobRequest(job_id=job_id)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.RetryJob(request, **m)
    )
    _acted("retried", reply, as_json)


@fallout_app.command("skip")
def fallout_skip(
    job_id: str,
    kind: Annotated[str, typer.Argument(help="the failed test: functional, performance, …")],
    reason: Annotated[str, typer.Option("--reason", help="why the test may be skipped")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Skip one failed test with a reason (engineers only), four-eyes: the first engineer's
    skip asks, another engineer's skip of the same test approves it."""
    request = pb.SkipTestRequest(job_id=job_id, kind=kind, reason=reason)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.SkipTest(request, **m)
    )
    record = next((t for t in reply.job.skipped_tests if t.kind == kind), None)
    if record is not None and not record.approved_by:
        _acted(f"asked to skip {kind} (another engineer approves with the same command) on",
               reply, as_json)  # fmt: skip
    else:
        _acted(f"skipped {kind} on", reply, as_json)


@fallout_app.command("rollback")
def fallout_rollback(
    job_id: str,
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return the device to its configuration before the job (idempotent); the job stays in
    the queue."""
    request = pb.RollBackJobRequest(job_id=job_id)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.RollBackJob(request, **m)
    )
    _acted("rolled back", reply, as_json)


@fallout_app.command("abort")
def fallout_abort(
    job_id: str,
    reason: Annotated[str, typer.Option("--reason", help="why the job is given up")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End the job (its configuration rolled back); the order fails with FALLOUT_ABORTED."""
    request = pb.AbortJobRequest(job_id=job_id, reason=reason)
    reply = _call(
        provisioning, token or "dev-engineer", as_json, lambda s, m: s.AbortJob(request, **m)
    )
    _acted("aborted", reply, as_json)
