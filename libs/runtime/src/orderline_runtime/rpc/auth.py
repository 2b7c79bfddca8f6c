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


# Well-known, so anyone can present them: accepted only when ORDERLINE_ALLOW_DEVELOPMENT_TOKENS
# is true and no tokens file is set (`orderline up` and the tests), never by default.
DEV_TOKENS: Mapping[str, Principal] = {
    f"dev-{role}": Principal(subject=f"{role}-dev", roles=frozenset({role})) for role in ROLES
}
DEV_SERVICE_TOKEN = "dev-service"

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
    def development(cls) -> TokenAuthenticator:
        return cls(DEV_TOKENS)

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"ORDERLINE_AUTH_TOKENS_FILE {path} is not JSON: {exc}") from None
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


@dataclass(frozen=True)
class Identity:
    """How a service authenticates its callers and what it presents to its peers.

    `problem` is set when the settings give neither a tokens file nor the development opt-in
    (or a service that calls peers has no token to present): the service must not start, and
    meanwhile the authenticator admits nobody.
    """

    authenticator: TokenAuthenticator
    service_token: str | None
    development: bool
    problem: str | None = None


def configure_identity(
    service: str,
    *,
    tokens_file: Path | None,
    allow_development_tokens: bool,
    service_token: str | None,
    calls_peers: bool,
) -> Identity:
    # A tokens file always wins over the opt-in, so a deployment with real tokens never also
    # accepts the well-known development ones.
    development = tokens_file is None and allow_development_tokens
    if development:
        return Identity(
            TokenAuthenticator.development(), service_token or DEV_SERVICE_TOKEN, development=True
        )
    if tokens_file is None:
        return Identity(
            TokenAuthenticator({}),
            service_token,
            development=False,
            problem=(
                f"{service}: no identity configuration: set ORDERLINE_AUTH_TOKENS_FILE to a "
                "tokens file, or ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true to accept the "
                "built-in development tokens (development only)"
            ),
        )
    problem = None
    if calls_peers and not service_token:
        problem = (
            f"{service}: ORDERLINE_SERVICE_TOKEN is unset: {service} calls other services "
            f"and needs a token to present (the development token {DEV_SERVICE_TOKEN!r} is "
            "used only with ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true and no tokens file)"
        )
    return Identity(
        TokenAuthenticator.from_file(tokens_file), service_token, development=False, problem=problem
    )


def authorize(principal: Principal, method: str, policy: Mapping[str, frozenset[str]]) -> None:
    """Deny by default: a method absent from the policy admits nobody."""
    allowed = policy.get(method)
    if allowed is None or not principal.has_any(allowed):
        raise PermissionDenied(
            f"{principal.subject} ({', '.join(sorted(principal.roles))}) may not call {method}",
            reason="ROLE_NOT_PERMITTED",
        )
