"""Domain errors shared by the simulators (pure: no gRPC here)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a simulator's domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """A request field is missing or malformed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(DomainError):
    """The named resource does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


class FailedPrecondition(DomainError):
    """The request is well formed but the current state does not allow it."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class Unavailable(DomainError):
    """A transient failure: the caller should retry (injected by the simulators)."""


class Unauthenticated(DomainError):
    """A presented bearer token that does not verify, or none where the method needs one."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PermissionDenied(DomainError):
    """A verified caller without a role the method needs."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
