"""The role matrix as data: a roles file must name exactly the RPCs served, with known roles
and a reason; anything else stops the service with one line naming the file and the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderline.reporting.v1 import reporting_pb2
from orderline_runtime.rpc.roles import RoleMatrixError, load_role_matrix, roles_table

SERVICE = "orderline.reporting.v1.ReportingService"
# Valid entries for the service's other RPCs, so that each case below breaks only the one
# entry it is about, however many RPCs the service grows.
OTHERS = "".join(
    f"  {m.name}: {{roles: [manager], why: x}}\n"
    for m in reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].methods
    if m.name != "GetOrderReport"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_complete_file_gives_the_policy_the_edge_enforces(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{SERVICE}:\n  GetOrderReport:\n    roles: [manager, auditor]\n    why: management\n"
        + OTHERS,
    )
    matrix = load_role_matrix(path, [SERVICE])
    policy = matrix.policy()
    assert policy[f"/{SERVICE}/GetOrderReport"] == frozenset({"manager", "auditor"})
    assert set(policy) == {
        f"/{SERVICE}/{m.name}"
        for m in reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].methods
    }
    table = roles_table([("reporting", matrix)])
    (row,) = [r for r in table.splitlines() if "`ReportingService.GetOrderReport`" in r]
    assert row.startswith("| reporting |") and row.count("✓") == 2


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (f"{SERVICE}: {{}}\n", "GetOrderReport: no entry"),
        (
            f"{SERVICE}:\n  GetOrderReport: {{roles: [manager], why: x}}\n"
            "  DropTables: {roles: [manager], why: x}\n" + OTHERS,
            "DropTables: the service has no such RPC",
        ),
        (
            f"{SERVICE}:\n  GetOrderReport: {{roles: [boss], why: x}}\n" + OTHERS,
            "unknown role 'boss'",
        ),
        (f"{SERVICE}:\n  GetOrderReport: {{roles: [manager], why: ' '}}\n" + OTHERS, ".why"),
        (f"{SERVICE}:\n  GetOrderReport: {{roles: manager, why: x}}\n" + OTHERS, ".roles"),
        (f"{SERVICE}:\n  GetOrderReport: [manager]\n" + OTHERS, "expected `roles"),
        ("orderline.x.v1.Other: {}\n" + f"{SERVICE}: {{}}\n", "not a service this process"),
        ("{{{{ not yaml", "cannot be read as YAML"),
        ("- a list\n", "a mapping of gRPC service"),
        ("{}\n", f"{SERVICE}: no entry for the service"),
    ],
    ids=[
        "missing-rpc",
        "unknown-rpc",
        "unknown-role",
        "no-reason",
        "roles-not-a-list",
        "entry-not-a-mapping",
        "other-service",
        "not-yaml",
        "not-a-mapping",
        "no-service",
    ],
)
def test_a_broken_file_is_refused_naming_the_file_and_entry(
    tmp_path: Path, text: str, names: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RoleMatrixError) as refused:
        load_role_matrix(path, [SERVICE])
    message = str(refused.value)
    assert message.startswith(str(path)) and names in message
    assert "\n" not in message


def test_a_service_unknown_to_the_contracts_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "orderline.x.v1.Nope: {}\n")
    with pytest.raises(RoleMatrixError, match="no such gRPC service"):
        load_role_matrix(path, ["orderline.x.v1.Nope"])
