"""The one place that turns domain errors into gRPC status codes with google.rpc details."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from orderline_simulators.common.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

_DOMAIN = "simulators.orderline"
_DETAILS_KEY = "grpc-status-details-bin"


def _code_for(exc: DomainError) -> grpc.StatusCode:
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED
    return grpc.StatusCode.INTERNAL


def _detail_for(exc: DomainError) -> any_pb2.Any:
    detail = any_pb2.Any()
    if isinstance(exc, InvalidArgument):
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=exc.field, description=exc.reason
                    )
                ]
            )
        )
    elif isinstance(exc, NotFound):
        detail.Pack(
            error_details_pb2.ResourceInfo(
                resource_type=exc.kind, resource_name=exc.name, description=exc.message
            )
        )
    elif isinstance(exc, FailedPrecondition | Unauthenticated | PermissionDenied):
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason=exc.reason_code, domain=_DOMAIN, metadata={"message": exc.message}
            )
        )
    else:
        detail.Pack(error_details_pb2.ErrorInfo(reason=type(exc).__name__.upper(), domain=_DOMAIN))
    return detail


def rich_status(exc: DomainError) -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """Status code, message and the google.rpc.Status that carries the details."""
    code = _code_for(exc)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=exc.message, details=[_detail_for(exc)]
    )
    return code, exc.message, status


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], exc: DomainError) -> NoReturn:
    """Ends the RPC with the status that matches ``exc``."""
    code, message, status = rich_status(exc)
    await context.abort(
        code, message, trailing_metadata=((_DETAILS_KEY, status.SerializeToString()),)
    )
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
