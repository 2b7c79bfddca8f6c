"""Input limits at the edge, the same for every service: the length of every string in a
request, and a per-principal rate of writes.

A service's own checks know each field's meaning (a phone number, a reason code) and say more;
these are the backstop that keeps a 10 MB note, or one person's runaway script, out of every
database whatever the RPC. The message size itself is capped by gRPC (the server's
`grpc.max_receive_message_length`), before a request is even decoded.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from orderline_runtime.errors import FieldViolation, ResourceExhausted

# Methods whose verb reads: everything else writes. A verb is the method name's leading
# capitalised word (ListOrders -> List). Kept as data, and checked against every RPC of the
# contracts by a test, so a new read verb is a conscious addition rather than a silent write.
READ_VERBS = frozenset({"Get", "List", "Watch", "Check", "Verify", "Export"})


def verb(method: str) -> str:
    """`/orderline.order.v1.OrderService/ListOrders` -> `List`."""
    name = method.rsplit("/", 1)[-1]
    end = 1
    while end < len(name) and not name[end].isupper():
        end += 1
    return name[:end]


def is_write(method: str) -> bool:
    return verb(method) not in READ_VERBS


def too_long(max_chars: int) -> str:
    return f"at most {max_chars} characters | 最多 {max_chars} 个字符"


def text_violations(message: Message, max_chars: int) -> list[FieldViolation]:
    """One violation per string (at any depth, in lists and maps too) longer than `max_chars`
    characters, named by its field path. Characters, not bytes: a Chinese name is as long as
    it reads."""
    return [FieldViolation(path, too_long(max_chars)) for path in _too_long(message, "", max_chars)]


def _too_long(message: Message, prefix: str, max_chars: int) -> Iterator[str]:
    # A string of n characters encodes to at least n bytes, so a message no larger than the
    # limit holds no string over it: most requests, and a telemetry batch's many small samples,
    # are passed over by one size check in C instead of a walk in Python.
    if message.ByteSize() <= max_chars:
        return
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_type = field.message_type.fields_by_name["value"].type
            for key, item in value.items():
                if isinstance(key, str) and len(key) > max_chars:
                    yield f"{path} (a key)"
                if value_type == FieldDescriptor.TYPE_STRING and len(item) > max_chars:
                    yield f"{path}[{key!r}]"
                elif value_type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _too_long(item, f"{path}[{key!r}].", max_chars)
        elif field.is_repeated:
            for index, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_STRING and len(item) > max_chars:
                    yield f"{path}[{index}]"
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _too_long(item, f"{path}[{index}].", max_chars)
        elif field.type == FieldDescriptor.TYPE_STRING and len(value) > max_chars:
            yield path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _too_long(value, path + ".", max_chars)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class WriteRateLimiter:
    """A token bucket per principal: `burst` writes at once, then `rate` per second.

    In memory and per process, so with n replicas a principal gets up to n times the rate:
    the limit is against one person's runaway script, not an accounting of quotas. Principals
    holding an exempt role (other services and front ends, which carry many people's work) are
    bounded by admission control instead.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        exempt_roles: frozenset[str] = frozenset({"service"}),
        clock: Callable[[], float] = time.monotonic,
        max_principals: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.exempt_roles = exempt_roles
        self._clock = clock
        self._max_principals = max_principals
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, subject: str, roles: frozenset[str]) -> None:
        """Spends one write of `subject`'s, or raises ResourceExhausted saying when to retry."""
        if not self.enabled or roles & self.exempt_roles:
            return
        now = self._clock()
        bucket = self._buckets.pop(subject, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        # Most recently used last; the least recently used principal is forgotten first (a
        # forgotten principal starts again with a full bucket, which errs on the generous side).
        self._buckets[subject] = bucket
        while len(self._buckets) > self._max_principals:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self.rate
            raise ResourceExhausted(
                f"too many writes by {subject}: at most {self.rate:g} per second "
                f"(bursts of {self.burst}); retry in {math.ceil(wait * 1000)} ms",
                reason="RATE_LIMITED",
                retry_after=wait,
            )
        bucket.tokens -= 1
