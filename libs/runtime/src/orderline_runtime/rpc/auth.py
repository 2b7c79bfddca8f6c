"""Bearer tokens to principals with roles, and the per-method role policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orderline_runtime.errors import PermissionDenied, Unauthenticated

ROLES = frozenset({"clerk", "reviewer", "engineer", "maintenance", "auditor", "manager", "service"})


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


# Well-known, so anyone can present them: accepted only when ORDERLINE_ALLOW_DEVELOPMENT_TOKENS
# is true and no tokens file or JWKS is set (`orderline up` and the tests), never by default.
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


class BearerVerifier(Protocol):
    """Verifies a bearer token that is not in the static table (a JWT, say)."""

    def accepts(self, token: str) -> bool: ...

    async def verify(self, token: str) -> Principal: ...


@dataclass(frozen=True)
class JwtConfig:
    """JWT bearer tokens from an identity provider (ORDERLINE_AUTH_JWKS_* and friends)."""

    jwks_file: Path | None
    jwks_url: str | None
    issuer: str | None
    audience: str | None
    roles_claim: str = "roles"
    # Clock skew tolerated on exp, nbf and iat.
    leeway_seconds: float = 30.0
    # The longest a call waits for the JWKS (first load, or a refresh for an unknown key id).
    fetch_timeout_seconds: float = 2.0
    # Keys older than this are re-fetched in the background, without holding any call.
    refresh_seconds: float = 300.0
    # Fetches happen at most this often, whatever key ids callers make up.
    min_refresh_seconds: float = 30.0

    def problem(self) -> str | None:
        if self.jwks_file is not None and self.jwks_url:
            return "set one of ORDERLINE_AUTH_JWKS_FILE and ORDERLINE_AUTH_JWKS_URL, not both"
        # Without both, a token minted by the same provider for another application (or by
        # another tenant) would be accepted here.
        missing = [
            name
            for name, value in (
                ("ORDERLINE_AUTH_ISSUER", self.issuer),
                ("ORDERLINE_AUTH_AUDIENCE", self.audience),
            )
            if not value
        ]
        if missing:
            return f"JWT bearer tokens need {' and '.join(missing)} as well as the JWKS"
        return None


class TokenAuthenticator:
    def __init__(
        self, tokens: Mapping[str, Principal], verifier: BearerVerifier | None = None
    ) -> None:
        self._tokens = dict(tokens)
        self._verifier = verifier

    @classmethod
    def development(cls) -> TokenAuthenticator:
        return cls(DEV_TOKENS)

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        return cls(read_tokens_file(path))

    def authenticate(self, authorization: str | None) -> Principal:
        """The static tokens only; `verify` also takes what the verifier accepts."""
        principal = self._tokens.get(_bearer_token(authorization))
        if principal is None:
            raise Unauthenticated("unknown or expired token")
        return principal

    async def verify(self, authorization: str | None) -> Principal:
        token = _bearer_token(authorization)
        # The static table first: a dictionary hit costs nothing, and a token in the file is
        # an exact secret whatever its shape.
        principal = self._tokens.get(token)
        if principal is not None:
            return principal
        if self._verifier is not None and self._verifier.accepts(token):
            return await self._verifier.verify(token)
        raise Unauthenticated("unknown or expired token")


def read_tokens_file(path: Path) -> dict[str, Principal]:
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
    return tokens


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing authorization metadata: expected 'Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'")
    return token.strip()


@dataclass(frozen=True)
class Identity:
    """How a service authenticates its callers and what it presents to its peers.

    `problem` is set when the settings give no identity configuration (a tokens file, a JWKS
    or the development opt-in), give an incomplete one, or a service that calls peers has no
    token to present: the service must not start, and meanwhile the authenticator admits
    nobody.
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
    jwt: JwtConfig | None = None,
) -> Identity:
    # A tokens file or a JWKS always wins over the opt-in, so a deployment with real
    # identities never also accepts the well-known development ones.
    development = tokens_file is None and jwt is None and allow_development_tokens
    if development:
        return Identity(
            TokenAuthenticator.development(), service_token or DEV_SERVICE_TOKEN, development=True
        )
    if tokens_file is None and jwt is None:
        return Identity(
            TokenAuthenticator({}),
            service_token,
            development=False,
            problem=(
                f"{service}: no identity configuration: set ORDERLINE_AUTH_TOKENS_FILE to a "
                "tokens file or ORDERLINE_AUTH_JWKS_URL (or ORDERLINE_AUTH_JWKS_FILE) for JWT "
                "bearer tokens, or ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true to accept the "
                "built-in development tokens (development only)"
            ),
        )
    if jwt is not None and (jwt_problem := jwt.problem()) is not None:
        return Identity(
            TokenAuthenticator({}),
            service_token,
            development=False,
            problem=f"{service}: {jwt_problem}",
        )
    problem = None
    if calls_peers and not service_token:
        problem = (
            f"{service}: ORDERLINE_SERVICE_TOKEN is unset: {service} calls other services "
            f"and needs a token to present (the development token {DEV_SERVICE_TOKEN!r} is "
            "used only with ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true and no other identity "
            "configuration)"
        )
    tokens = read_tokens_file(tokens_file) if tokens_file is not None else {}
    verifier: BearerVerifier | None = None
    if jwt is not None:
        # Imported only where JWTs are configured: PyJWT and cryptography cost a service that
        # never sees one resident memory for nothing.
        from orderline_runtime.rpc.jwt_auth import JwtVerifier

        verifier = JwtVerifier(jwt)
    return Identity(
        TokenAuthenticator(tokens, verifier), service_token, development=False, problem=problem
    )


def authorize(principal: Principal, method: str, policy: Mapping[str, frozenset[str]]) -> None:
    """Deny by default: a method absent from the policy admits nobody."""
    allowed = policy.get(method)
    if allowed is None or not principal.has_any(allowed):
        raise PermissionDenied(
            f"{principal.subject} ({', '.join(sorted(principal.roles))}) may not call {method}",
            reason="ROLE_NOT_PERMITTED",
        )
