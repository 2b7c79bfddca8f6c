"""The gateway's deliveries, pure: no I/O, no gRPC; clock, ids and randomness are injected.

A send is validated, may fail on purpose (``failure_rate``: that share of sends fail with
Unavailable and count as attempts of their key), and is idempotent on ``idempotency_key``: the
first successful send delivers and records a delivery id; a repeat returns the same delivery id
with ``duplicate=True`` and delivers nothing. ``attempts`` counts every send tried for a key,
failed ones and duplicates included.

An accepted message gets its delivery report ``report_delay_ms`` after acceptance: PENDING
until then, then DELIVERED, or FAILED (``UNREACHABLE``) for a ``delivery_failure_rate`` share
of messages, decided when the message is accepted (so every read of the report agrees).
"""

from __future__ import annotations

import enum
import math
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from orderline_simulators.common.errors import InvalidArgument, Unavailable

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
"""E.164: a plus, a country code not starting with 0, 7 to 15 digits in all."""
MAX_TEXT_CHARS = 2000
MAX_DELAY_MS = 600_000


class DeliveryStatus(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# The failure reason of an injected delivery failure.
UNREACHABLE = "UNREACHABLE"


class Channel(enum.Enum):
    SMS = "sms"
    VOICE = "voice"


def mask_phone(number: str) -> str:
    """``+8613800138000`` → ``+861******8000``: the first 3 and last 4 digits stay."""
    digits = number.removeprefix("+")
    if len(digits) <= 7:
        return ("+" if number.startswith("+") else "") + "*" * len(digits)
    prefix = "+" if number.startswith("+") else ""
    return f"{prefix}{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_text(text: str) -> str:
    """A message's text reduced to its length: ``[masked: 57 characters]``.

    The whole text goes, not only its digits: a notice names the voucher, a relocation's new
    address, and could name the customer, none of which is digits alone. The length stays: it
    tells a caller a message was there and how long, and identifies no one."""
    return f"[masked: {len(text)} characters]"


@dataclass(frozen=True)
class Notification:
    """A validated send request."""

    idempotency_key: str
    channel: Channel
    to: str
    locale: str
    text: str


def validate(
    idempotency_key: str, channel: Channel | None, to: str, locale: str, text: str
) -> Notification:
    """Raises InvalidArgument naming the first bad field."""
    if not idempotency_key.strip():
        raise InvalidArgument("idempotency_key", "required")
    if channel is None:
        raise InvalidArgument("channel", "required: sms or voice")
    if not to:
        raise InvalidArgument("to", "required")
    if not E164.match(to):
        raise InvalidArgument("to", "must be an E.164 number such as +8613800138000")
    if not text.strip():
        raise InvalidArgument("text", "required")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidArgument("text", f"longer than {MAX_TEXT_CHARS} characters")
    return Notification(idempotency_key, channel, to, locale, text)


@dataclass
class Delivery:
    delivery_id: str
    notification: Notification
    attempts: int
    # When the message was accepted.
    delivered_at: datetime
    # When the delivery report comes, and whether it says FAILED (decided at acceptance).
    reported_at: datetime | None = None
    fails: bool = False

    def status(self, now: datetime) -> DeliveryStatus:
        if self.reported_at is None or now < self.reported_at:
            return DeliveryStatus.PENDING
        return DeliveryStatus.FAILED if self.fails else DeliveryStatus.DELIVERED

    def report_in(self, now: datetime) -> timedelta:
        """How long until the report comes (zero once it is in)."""
        if self.reported_at is None or now >= self.reported_at:
            return timedelta(0)
        return self.reported_at - now

    def failure_reason(self, now: datetime) -> str:
        return UNREACHABLE if self.status(now) is DeliveryStatus.FAILED else ""


@dataclass(frozen=True)
class SendResult:
    delivery: Delivery
    duplicate: bool


@dataclass(frozen=True)
class Faults:
    failure_rate: float = 0.0
    delay_ms: int = 0
    # Share of accepted messages whose delivery report is FAILED.
    delivery_failure_rate: float = 0.0
    # How long after acceptance the delivery report comes.
    report_delay_ms: int = 0


def check_faults(
    failure_rate: float,
    delay_ms: int,
    delivery_failure_rate: float = 0.0,
    report_delay_ms: int = 0,
) -> Faults:
    for name, rate in (
        ("failure_rate", failure_rate),
        ("delivery_failure_rate", delivery_failure_rate),
    ):
        if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
            raise InvalidArgument(name, "must be between 0 and 1")
    for name, ms in (("delay_ms", delay_ms), ("report_delay_ms", report_delay_ms)):
        if not 0 <= ms <= MAX_DELAY_MS:
            raise InvalidArgument(name, f"must be between 0 and {MAX_DELAY_MS}")
    return Faults(failure_rate, delay_ms, delivery_failure_rate, report_delay_ms)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return f"dlv-{uuid.uuid4().hex}"


class Gateway:
    def __init__(
        self,
        faults: Faults | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _now,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.faults = faults or Faults()
        self._rng = rng or random.Random()
        self._clock = clock
        self._new_id = new_id
        self._deliveries: dict[str, Delivery] = {}
        self._failed_attempts: dict[str, int] = {}
        self._by_id: dict[str, Delivery] = {}

    def configure(
        self,
        failure_rate: float,
        delay_ms: int,
        delivery_failure_rate: float | None = None,
        report_delay_ms: int | None = None,
    ) -> Faults:
        """Sets the faults; the delivery ones left None keep their current values."""
        self.faults = check_faults(
            failure_rate,
            delay_ms,
            self.faults.delivery_failure_rate
            if delivery_failure_rate is None
            else delivery_failure_rate,
            self.faults.report_delay_ms if report_delay_ms is None else report_delay_ms,
        )
        return self.faults

    def now(self) -> datetime:
        return self._clock()

    def send(self, notification: Notification) -> SendResult:
        """Delivers once per key; raises Unavailable for an injected failure."""
        key = notification.idempotency_key
        if self.faults.failure_rate > 0 and self._rng.random() < self.faults.failure_rate:
            delivered = self._deliveries.get(key)
            if delivered is not None:
                delivered.attempts += 1
            else:
                self._failed_attempts[key] = self._failed_attempts.get(key, 0) + 1
            raise Unavailable("injected failure: the gateway is unavailable, try again")
        delivered = self._deliveries.get(key)
        if delivered is not None:
            delivered.attempts += 1
            return SendResult(replace(delivered), duplicate=True)
        now = self._clock()
        rate = self.faults.delivery_failure_rate
        delivery = Delivery(
            delivery_id=self._new_id(),
            notification=notification,
            attempts=self._failed_attempts.pop(key, 0) + 1,
            delivered_at=now,
            reported_at=now + timedelta(milliseconds=self.faults.report_delay_ms),
            fails=rate > 0 and self._rng.random() < rate,
        )
        self._deliveries[key] = delivery
        self._by_id[delivery.delivery_id] = delivery
        return SendResult(replace(delivery), duplicate=False)

    def delivery(self, delivery_id: str) -> Delivery | None:
        """The accepted message with this id (its report by `Delivery.status`), or None."""
        found = self._by_id.get(delivery_id)
        return replace(found) if found is not None else None

    def attempts(self, idempotency_key: str) -> int:
        delivered = self._deliveries.get(idempotency_key)
        if delivered is not None:
            return delivered.attempts
        return self._failed_attempts.get(idempotency_key, 0)

    def deliveries(self) -> list[Delivery]:
        """Every delivered message, oldest first (keys that only ever failed are not listed)."""
        return [replace(d) for d in self._deliveries.values()]
