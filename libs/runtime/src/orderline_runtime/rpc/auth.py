"""Bearer tokens to principals with roles, and the per-method role policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from orderline_runtime.errors import PermissionDenied, Unauthenticated

ROLES = frozenset({"clerk", "reviewer", "engineer", "maintenance", "auditor", "manager", "service"})


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


# Development tokens, used only when no tokens file is configured (a warning is logged).
DEV_TOKENS: Mapping[str, Principal] = {
    f"dev-{role}": Principal(subject=f"{role}-dev", roles=frozenset({role})) for role in ROLES
}

_current: ContextVar[Principal | None] = ContextVar("orderline_principal", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no principal for this call")
    return principal


def set_principal(principal: Principal | None) -> object:
    return _current.set(principal)


class TokenAuthenticator:
    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._tokens = dict(tokens)

    @classmethod
    def from_file(cls, path: Path | None) -> TokenAuthenticator:
        if path is None:
            return cls(DEV_TOKENS)
        raw = json.loads(path.read_text(encoding="utf-8"))
        tokens: dict[str, Principal] = {}
        for token, spec in raw.items():
            roles = frozenset(spec["roles"])
            unknown = roles - ROLES
            if unknown:
                raise ValueError(f"{path}: unknown roles {sorted(unknown)} for {spec['subject']!r}")
            tokens[token] = Principal(subject=spec["subject"], roles=roles)
        return cls(tokens)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing authorization metadata: expected 'Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'")
        principal = self._tokens.get(token.strip())
        if principal is None:
            raise Unauthenticated("unknown or expired token")
        return principal


def authorize(principal: Principal, method: str, policy: Mapping[str, frozenset[str]]) -> None:
    """Deny by default: a method absent from the policy admits nobody."""
    allowed = policy.get(method)
    if allowed is None or not principal.has_any(allowed):
        raise PermissionDenied(
            f"{principal.subject} ({', '.join(sorted(principal.roles))}) may not call {method}",
            reason="ROLE_NOT_PERMITTED",
        )
