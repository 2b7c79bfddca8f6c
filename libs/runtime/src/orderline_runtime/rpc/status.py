"""The one place that turns errors into gRPC status codes with google.rpc details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from sqlalchemy.exc import DBAPIError, IntegrityError

from orderline_runtime import errors

DOMAIN = "orderline.telecom"

_CODES: list[tuple[type[errors.OrderlineError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """Maps an exception to (code, message, google.rpc.Status with details)."""
    code, message, reason = _classify(exc)
    details: list[any_pb2.Any] = []
    if isinstance(exc, errors.InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in exc.violations
            ]
        )
        details.append(_pack(bad))
    if isinstance(exc, errors.FailedPrecondition):
        pf = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=v.type, subject=v.subject, description=v.description
                )
                for v in exc.violations
            ]
        )
        details.append(_pack(pf))
    details.append(_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return code, message, status


def _classify(exc: BaseException) -> tuple[grpc.StatusCode, str, str]:
    if isinstance(exc, errors.OrderlineError):
        for cls, code in _CODES:
            if isinstance(exc, cls):
                return code, exc.message, exc.reason
    if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError):
        return (
            grpc.StatusCode.UNAVAILABLE,
            "database unavailable, retry later",
            "DATABASE_UNAVAILABLE",
        )
    if isinstance(exc, TimeoutError | ConnectionError):
        return (
            grpc.StatusCode.UNAVAILABLE,
            "a dependency did not answer, retry later",
            "DEPENDENCY_UNAVAILABLE",
        )
    return grpc.StatusCode.INTERNAL, "internal error", "INTERNAL"


def _pack(msg: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)  # type: ignore[arg-type]
    return packed


assert code_pb2.OK == 0  # google.rpc codes and grpc.StatusCode share numbering
