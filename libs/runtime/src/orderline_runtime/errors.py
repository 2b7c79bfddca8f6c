"""Errors the domain and application layers raise, free of any transport.

The gRPC edge maps them to status codes with google.rpc details (grpc/errors.py); the event
consumer maps them to ack decisions (messaging/consumer.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class OrderlineError(Exception):
    """Base of the errors a caller is meant to see. `reason` is a stable UPPER_SNAKE code."""

    reason: str = "ORDERLINE_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class InvalidArgument(OrderlineError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], message: str = "") -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(message or f"invalid request: {summary}")
        self.violations = violations


class NotFound(OrderlineError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, key: str) -> None:
        super().__init__(f"{resource} {key!r} not found", reason=f"{resource.upper()}_NOT_FOUND")
        self.resource = resource
        self.key = key


class FailedPrecondition(OrderlineError):
    reason = "FAILED_PRECONDITION"

    def __init__(
        self, message: str, *, reason: str | None = None, violations: list[PreconditionViolation]
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = violations


class Unauthenticated(OrderlineError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(OrderlineError):
    reason = "PERMISSION_DENIED"


class Unavailable(OrderlineError):
    """A dependency is down or overloaded; the same call may succeed later."""

    reason = "UNAVAILABLE"


class ResourceExhausted(OrderlineError):
    """Shed under overload before anything was done: the caller may retry with backoff, or
    after `retry_after` seconds when that is known (sent as google.rpc.RetryInfo)."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Conflict(OrderlineError):
    """A concurrent transaction wrote the same unique key first; trying again sees its result."""

    reason = "CONFLICT"


class AlreadyExists(OrderlineError):
    """The key is taken by something else: a retry of a request id with a different body, say.
    Trying again changes nothing."""

    reason = "ALREADY_EXISTS"


class PoisonMessage(Exception):
    """An event that can never be handled (malformed, against the contract): dead-letter it."""


@dataclass
class Violations:
    """Collects field violations so that one response names every bad field."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)
