"""Reading a request's optional Timestamp field at the gRPC edge.

A Timestamp the protobuf runtime cannot turn into a datetime (nanos outside 0..999,999,999,
a time before year 1 or after 9999) raises deep inside a handler and would surface as
INTERNAL; every service reads such fields here instead, so it is a field violation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orderline_runtime.errors import Violations

# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range google.protobuf.Timestamp allows.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
INVALID_TIME = "not a valid time (0001-01-01 to 9999-12-31, UTC) | 无效的时间"


def is_valid(ts: Any) -> bool:
    """Whether a google.protobuf.Timestamp is inside the range the type defines."""
    return bool(MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos <= 999_999_999)


def optional_time(request: Any, field: str, violations: Violations) -> datetime | None:
    """The field as an aware UTC datetime; None when unset, or when invalid (then a violation
    naming `field` is added)."""
    if not request.HasField(field):
        return None
    ts = getattr(request, field)
    if not is_valid(ts):
        violations.add(field, INVALID_TIME)
        return None
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
