"""Who is calling a simulator: callers' bearer tokens verified the way the services verify them.

The identity settings (a tokens file, a JWKS, or the development opt-in) and the verification
are orderline_runtime's (`IdentitySettings`, `configure_identity`, `TokenAuthenticator`); what
is the simulators' own is what a caller without a token gets, since a simulator stands in for
a carrier's or a device's endpoint rather than for one of our services:

- no identity configuration at all: nobody is verified and every caller is anonymous (a
  simulator started by hand, or beside services that give it none, keeps working);
- with one: a call without a token is anonymous, unless its method needs a role (then
  UNAUTHENTICATED); a token that is presented must verify (else UNAUTHENTICATED, never a
  quiet downgrade to anonymous, so a misconfigured caller finds out); a verified principal
  without a role its method needs is PERMISSION_DENIED.

A servicer asks `caller()` for the principal of the call in hand (None: anonymous) and decides
what an anonymous caller may see.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from orderline_runtime import errors as runtime_errors
from orderline_runtime.rpc.auth import Principal, TokenAuthenticator, configure_identity
from orderline_runtime.settings import IdentitySettings, env_name, unreadable_files
from orderline_simulators.common.errors import (
    DomainError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from orderline_simulators.common.logs import get_logger
from orderline_simulators.common.status import abort_with

log = get_logger("auth")

_caller: ContextVar[Principal | None] = ContextVar("simulator_caller", default=None)


def caller() -> Principal | None:
    """The verified principal of the call in hand; None when the caller is anonymous."""
    return _caller.get()


@dataclass(frozen=True)
class CallerIdentity:
    """How a simulator verifies its callers. `authenticator` None: no identity configuration."""

    authenticator: TokenAuthenticator | None
    development: bool = False

    @property
    def configured(self) -> bool:
        return self.authenticator is not None


class IdentityError(ValueError):
    """The identity configuration is incomplete or names a file that cannot be used."""


def caller_identity(settings: IdentitySettings, name: str) -> CallerIdentity:
    """How the simulator named `name` verifies its callers, from its settings."""
    jwt = settings.jwt_config()
    if settings.auth_tokens_file is None and jwt is None and not settings.allow_development_tokens:
        return CallerIdentity(None)
    # The same check, and so the same words, as the services' (`orderline up` shows whichever
    # process stopped first).
    for field, problem in unreadable_files(settings):
        raise IdentityError(f"{env_name(field)}: {problem}")
    try:
        identity = configure_identity(
            name,
            tokens_file=settings.auth_tokens_file,
            allow_development_tokens=settings.allow_development_tokens,
            service_token=settings.service_token,
            # What a simulator presents on its own calls (the fleet's telemetry stream) is its
            # own setting; verifying callers needs no token of its own.
            calls_peers=False,
            jwt=jwt,
        )
    except (OSError, ValueError) as exc:
        # A tokens file that is not JSON or names an unknown role, a JWKS without a usable key.
        raise IdentityError(str(exc)) from None
    if identity.problem is not None:
        raise IdentityError(identity.problem.removeprefix(f"{name}: "))
    return CallerIdentity(identity.authenticator, identity.development)


def load_identity(settings: IdentitySettings, *, program: str) -> CallerIdentity:
    """The identity, or exit status 2 with the problem on stderr, as for a bad setting."""
    try:
        return caller_identity(settings, program)
    except IdentityError as exc:
        print(f"{program}: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def log_identity(identity: CallerIdentity, simulator: str) -> None:
    """One line at start saying how callers are verified, so an operator sees it."""
    if not identity.configured:
        log.warning(
            "no identity configuration: no caller is verified, every caller is anonymous "
            "(set ORDERLINE_AUTH_TOKENS_FILE, ORDERLINE_AUTH_JWKS_URL or _FILE, or "
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS=true as for the services)",
            simulator=simulator,
        )
    elif identity.development:
        log.warning(
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS: accepting the well-known development tokens "
            "dev-<role>; never use this outside development",
            simulator=simulator,
        )


class CallerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Verifies the bearer token of every call to the simulator's own services (health and
    reflection stay open, as at the services) and keeps the principal for `caller()`.

    `needs`: method path (`/package.Service/Method`) → the roles one of which a caller must
    have; other methods admit anonymous callers. Applied only with an identity configuration.
    """

    def __init__(
        self,
        identity: CallerIdentity,
        services: Iterable[str],
        needs: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._authenticator = identity.authenticator
        self._prefixes = tuple(f"/{name}/" for name in services)
        self._needs = dict(needs or {})

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self._prefixes):
            return handler
        if handler.unary_unary is None:
            # Every RPC a simulator serves is unary; a streaming one would need its own wrapper
            # rather than pass unchecked.
            raise NotImplementedError(f"{method}: only unary RPCs are checked")
        metadata = dict(handler_call_details.invocation_metadata or ())
        authorization = metadata.get("authorization")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        inner = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                principal = await self._admit(method, authorization)
            except DomainError as exc:
                await abort_with(context, exc)
            # Set in the task that runs the servicer, so `caller()` sees it there.
            _caller.set(principal)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _admit(self, method: str, authorization: str | None) -> Principal | None:
        if self._authenticator is None:
            return None
        roles = self._needs.get(method)
        rpc = method.rsplit("/", 1)[-1]
        if not authorization:
            if roles:
                raise Unauthenticated(
                    "UNAUTHENTICATED", f"{rpc} needs 'authorization: Bearer <token>'"
                )
            return None
        try:
            principal = await self._authenticator.verify(authorization)
        except runtime_errors.Unauthenticated as exc:
            raise Unauthenticated(exc.reason, exc.message) from None
        except runtime_errors.Unavailable as exc:
            # The identity provider's keys could not be had in time (a JWKS URL): try again.
            raise Unavailable(exc.message) from None
        if roles and not principal.has_any(roles):
            raise PermissionDenied(
                "ROLE_NOT_PERMITTED",
                f"{principal.subject} ({', '.join(sorted(principal.roles))}) may not call "
                f"{rpc} (needs {', '.join(sorted(roles))})",
            )
        return principal
