"""The one place that turns errors into gRPC status codes with google.rpc details."""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from sqlalchemy.exc import DBAPIError, IntegrityError

from orderline_runtime import errors

DOMAIN = "orderline.telecom"

# The status travels in trailers, which must fit the caller's metadata limit (8 KiB by default
# in gRPC); past it the caller gets RESOURCE_EXHAUSTED "Stream removed" instead of our answer.
# Texts may echo what the caller sent (a 10k-character id), so they are clipped: the message
# (sent percent-encoded, up to 3 bytes per byte) and the details (sent base64, 4 per 3) stay
# near 5 KiB together, whatever the input.
MAX_MESSAGE_BYTES = 384
MAX_TEXT_BYTES = 160
MAX_DETAILS_BYTES = 3072

_CODES: list[tuple[type[errors.OrderlineError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Conflict, grpc.StatusCode.ABORTED),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """Maps an exception to (code, message, google.rpc.Status with details)."""
    code, message, reason = _classify(exc)
    message = clip(message, MAX_MESSAGE_BYTES)
    bad = error_details_pb2.BadRequest()
    if isinstance(exc, errors.InvalidArgument):
        for v in exc.violations:
            bad.field_violations.add(
                field=clip(v.field, MAX_TEXT_BYTES), description=clip(v.description, MAX_TEXT_BYTES)
            )
    failure = error_details_pb2.PreconditionFailure()
    if isinstance(exc, errors.FailedPrecondition):
        for p in exc.violations:
            failure.violations.add(
                type=clip(p.type, MAX_TEXT_BYTES),
                subject=clip(p.subject, MAX_TEXT_BYTES),
                description=clip(p.description, MAX_TEXT_BYTES),
            )
    retry = error_details_pb2.RetryInfo()
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
        # Whole milliseconds, rounded up: a caller waiting the delay finds the turn there.
        retry.retry_delay.FromMilliseconds(max(1, math.ceil(exc.retry_after * 1000)))
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)
    while True:
        details = [_pack(d) for d in (bad, failure, retry) if d.ByteSize()] + [_pack(info)]
        status = status_pb2.Status(code=code.value[0], message=message, details=details)
        if status.ByteSize() <= MAX_DETAILS_BYTES:
            return code, message, status
        # Too many violations to carry: keep the first ones.
        if len(bad.field_violations) > 1:
            del bad.field_violations[-1]
        elif len(failure.violations) > 1:
            del failure.violations[-1]
        else:  # not reached with clipped texts; the code and reason go regardless
            return (
                code,
                message,
                status_pb2.Status(code=code.value[0], message=message, details=[_pack(info)]),
            )


def clip(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary and marked with an ellipsis."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "\u2026"


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
