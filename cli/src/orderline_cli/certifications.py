"""`orderline certification grant|revoke|list`: who may operate provisioning jobs of which
business type (the pre-operation checklist's operator_certified item)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import print_json, table, to_json

certification_app = typer.Typer(
    help="Operator certifications per business type: grant, revoke with a reason, list.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
ProvisioningOpt = Annotated[str | None, typer.Option("--provisioning", help="host:port")]


def register(app: typer.Typer) -> None:
    app.add_typer(certification_app, name="certification")


def _call(
    address: str | None, token: str, as_json: bool, call: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call(
        "provisioning", provisioning_pb2_grpc.ProvisioningServiceStub, address, token, as_json, call
    )


def _line(verb: str, c: pb.Certification) -> None:
    print(f"{verb} {c.principal} for {c.business_type} (granted by {c.granted_by})")
    if c.revoked_by:
        print(f"  revoked by {c.revoked_by} at {calls.when(c.revoked_at)}: {c.revoke_reason}")


@certification_app.command("grant")
def certification_grant(
    principal: str,
    business_type: str,
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Certify a principal (a token's subject, e.g. engineer-dev) for a business type (manager)."""
    request = pb.GrantCertificationRequest(principal=principal, business_type=business_type)
    reply = _call(
        provisioning,
        token or "dev-manager",
        as_json,
        lambda s, m: s.GrantCertification(request, **m),
    )
    if as_json:
        print_json(to_json(reply))
        return
    _line("certified", reply.certification)


@certification_app.command("revoke")
def certification_revoke(
    principal: str,
    business_type: str,
    reason: Annotated[str, typer.Option("--reason", help="why (required)")] = "",
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a certification with a reason (manager); that operator's new jobs stop at the
    checklist."""
    request = pb.RevokeCertificationRequest(
        principal=principal, business_type=business_type, reason=reason
    )
    reply = _call(
        provisioning,
        token or "dev-manager",
        as_json,
        lambda s, m: s.RevokeCertification(request, **m),
    )
    if as_json:
        print_json(to_json(reply))
        return
    _line("revoked", reply.certification)


@certification_app.command("list")
def certification_list(
    principal: Annotated[str, typer.Option("--principal")] = "",
    business_type: Annotated[str, typer.Option("--type", help="business type")] = "",
    include_revoked: Annotated[bool, typer.Option("--revoked", help="revoked ones too")] = False,
    provisioning: ProvisioningOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Certifications, by principal and business type."""
    request = pb.ListCertificationsRequest(
        principal=principal, business_type=business_type, include_revoked=include_revoked
    )
    reply = _call(
        provisioning,
        token or "dev-manager",
        as_json,
        lambda s, m: s.ListCertifications(request, **m),
    )
    if as_json:
        print_json(to_json(reply))
        return
    rows = [
        [
            c.principal,
            c.business_type,
            c.granted_by,
            calls.when(c.granted_at),
            f"revoked by {c.revoked_by}: {c.revoke_reason}" if c.revoked_by else "active",
        ]
        for c in reply.certifications
    ]
    print(table(("principal", "business type", "granted by", "granted", "state"), rows))
