"""Server interceptor: authenticate and authorize every call, apply the input limits, and map
errors to status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc
from grpc.aio import ServicerContext

from orderline_runtime.errors import FieldViolation, InvalidArgument
from orderline_runtime.logs import get_logger
from orderline_runtime.rpc.auth import Principal, TokenAuthenticator, authorize, set_principal
from orderline_runtime.rpc.limits import WriteRateLimiter, is_write, text_violations
from orderline_runtime.rpc.status import to_status

log = get_logger(__name__)

# Probes and tooling: health and reflection need no token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


async def abort_with(context: ServicerContext[Any, Any], exc: BaseException) -> NoReturn:
    code, message, status = to_status(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("unexpected error in RPC", exc_info=exc)
    await context.abort(
        code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
    )
    raise AssertionError("unreachable")  # abort raises


class EdgeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        authenticator: TokenAuthenticator,
        policy: Mapping[str, frozenset[str]],
        *,
        max_text_chars: int = 2000,
        write_rate: WriteRateLimiter | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._policy = policy
        self._max_text_chars = max_text_chars
        self._write_rate = write_rate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        authorization = metadata.get("authorization")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()

        writes = self._write_rate is not None and is_write(method)

        async def admit() -> Principal:
            principal = await self._authenticator.verify(authorization)
            authorize(principal, method, self._policy)
            if writes:
                # Refused before the request is read: a limited write has done nothing.
                assert self._write_rate is not None
                self._write_rate.take(principal.subject, principal.roles)
            return principal

        return _wrap(handler, admit, self._max_text_chars)


class _Undecodable:
    """Stands in for a request whose bytes are not the method's message. gRPC answers a
    deserializer's exception with UNKNOWN and the parser's text; the caller sent bad input,
    so the handler answers INVALID_ARGUMENT instead, after authentication."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _decoding(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    parse = deserializer

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:
            return _Undecodable(exc)

    return decode


def _decoded(request: Any, max_text_chars: int) -> Any:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            [FieldViolation("request", "not a valid encoding of the method's request message")]
        )
    if violations := text_violations(request, max_text_chars):
        raise InvalidArgument(violations)
    return request


async def _decoded_stream(requests: AsyncIterator[Any], max_text_chars: int) -> AsyncIterator[Any]:
    async for request in requests:
        yield _decoded(request, max_text_chars)


def _wrap(
    handler: grpc.RpcMethodHandler,
    admit: Callable[[], Awaitable[Principal]],
    max_text_chars: int,
) -> grpc.RpcMethodHandler:
    kwargs = {
        "request_deserializer": _decoding(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: ServicerContext[Any, Any]) -> Any:
            try:
                set_principal(await admit())
                return await inner_uu(_decoded(request, max_text_chars), context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:
                await abort_with(context, exc)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def unary_stream(
            request: Any, context: ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                set_principal(await admit())
                async for item in inner_us(_decoded(request, max_text_chars), context):
                    yield item
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:
                await abort_with(context, exc)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: ServicerContext[Any, Any]) -> Any:
            try:
                set_principal(await admit())
                return await inner_su(_decoded_stream(requests, max_text_chars), context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as exc:
                await abort_with(context, exc)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    inner_ss = handler.stream_stream

    async def stream_stream(
        requests: Any, context: ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            set_principal(await admit())
            async for item in inner_ss(_decoded_stream(requests, max_text_chars), context):
                yield item
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await abort_with(context, exc)

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
