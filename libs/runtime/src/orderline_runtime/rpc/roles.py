"""The role matrix: which roles may call each RPC, as data, one file per service.

A service ships `roles.yaml` beside its bootstrap:

    orderline.order.v1.OrderService:        # a gRPC service the process serves
      CreateOrder:
        roles: [clerk, service]
        why: clerks take orders; a front end or partner system creates them as a service

Every RPC of every service the process serves must have an entry, every entry must name an RPC
that exists (checked against the generated descriptors), and every role must be one of
`auth.ROLES`; anything else stops the service at start with one line naming the file and the
entry. Deny by default: a role not listed is refused with PERMISSION_DENIED. `scripts/gen_docs.py`
publishes the matrices in docs/roles.md, and a test calls every RPC with every role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pool

from orderline_runtime.rpc.auth import ROLES


class RoleMatrixError(ValueError):
    """A roles file that does not describe exactly the RPCs served, with known roles."""


@dataclass(frozen=True)
class RpcRoles:
    service: str  # the full gRPC service name
    rpc: str
    roles: frozenset[str]
    why: str

    @property
    def method(self) -> str:
        """The path gRPC names the call by: /package.Service/Method."""
        return f"/{self.service}/{self.rpc}"


@dataclass(frozen=True)
class RoleMatrix:
    path: Path
    entries: tuple[RpcRoles, ...]

    def policy(self) -> dict[str, frozenset[str]]:
        """Method path -> the roles allowed, as the gRPC edge authorizes."""
        return {e.method: e.roles for e in self.entries}


def load_role_matrix(path: Path, services: Iterable[str]) -> RoleMatrix:
    """Reads and checks `path` against the services (full names) the process serves."""
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        flat = " ".join(str(exc).split())  # one line for the operator
        raise RoleMatrixError(f"{where}: cannot be read as YAML: {flat}") from None
    if not isinstance(data, Mapping):
        raise RoleMatrixError(f"{where}: a mapping of gRPC service to its RPCs is expected")
    served = list(services)
    extra = sorted(set(data) - set(served))
    if extra:
        raise RoleMatrixError(f"{where}: {extra[0]}: not a service this process serves")
    entries: list[RpcRoles] = []
    for service in served:
        rpcs = data.get(service)
        if not isinstance(rpcs, Mapping):
            raise RoleMatrixError(f"{where}: {service}: no entry for the service")
        known = _methods(service)
        for name in known:
            if name not in rpcs:
                raise RoleMatrixError(f"{where}: {service}.{name}: no entry (who may call it?)")
        for name, entry in rpcs.items():
            if name not in known:
                raise RoleMatrixError(f"{where}: {service}.{name}: the service has no such RPC")
            entries.append(_entry(where, service, str(name), entry))
    return RoleMatrix(path, tuple(entries))


def _methods(service: str) -> list[str]:
    try:
        descriptor = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        raise RoleMatrixError(f"{service}: no such gRPC service in the contracts") from None
    return [m.name for m in descriptor.methods]


def _entry(where: str, service: str, name: str, entry: Any) -> RpcRoles:
    at = f"{where}: {service}.{name}"
    if not isinstance(entry, Mapping) or set(entry) != {"roles", "why"}:
        raise RoleMatrixError(f"{at}: expected `roles: [...]` and `why: ...`")
    roles, why = entry["roles"], entry["why"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise RoleMatrixError(f"{at}.roles: a list of role names")
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise RoleMatrixError(f"{at}.roles: unknown role {unknown[0]!r} (roles: {sorted(ROLES)})")
    if not isinstance(why, str) or not why.strip():
        raise RoleMatrixError(f"{at}.why: say why these roles, in a sentence")
    return RpcRoles(service, name, frozenset(roles), why.strip())


def roles_table(matrices: Iterable[tuple[str, RoleMatrix]]) -> str:
    """The Markdown table of docs/roles.md: one row per RPC, one column per role."""
    order = ["clerk", "reviewer", "engineer", "maintenance", "auditor", "manager", "service"]
    assert set(order) == ROLES
    lines = [
        "| service | RPC | " + " | ".join(order) + " | why |",
        "|---|---|" + "---|" * len(order) + "---|",
    ]
    for owner, matrix in matrices:
        for e in matrix.entries:
            marks = " | ".join("✓" if role in e.roles else "" for role in order)
            lines.append(
                f"| {owner} | `{e.service.rsplit('.', 1)[-1]}.{e.rpc}` | {marks} | {e.why} |"
            )
    return "\n".join(lines) + "\n"
