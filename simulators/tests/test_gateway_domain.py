"""The gateway's pure domain: validation, idempotency, failure injection, phone masking."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from orderline_simulators.common.errors import InvalidArgument, Unavailable
from orderline_simulators.gateway.domain import (
    Channel,
    Faults,
    Gateway,
    check_faults,
    mask_phone,
    mask_text,
    validate,
)

PHONE = "+8613800138000"


def make_gateway(faults: Faults | None = None, seed: int = 0) -> Gateway:
    ids = (f"dlv-{n}" for n in itertools.count(1))
    return Gateway(
        faults,
        rng=random.Random(seed),
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        new_id=lambda: next(ids),
    )


def test_mask_phone_keeps_first_three_and_last_four_digits() -> None:
    assert mask_phone(PHONE) == "+861******8000"
    assert mask_phone("+4915112345678") == "+491******5678"
    assert mask_phone("+123456") == "+******"


def test_mask_text_keeps_only_the_length() -> None:
    notice = "您的业务开通凭证号：VCH-7f3a9c，新地址北京市海淀区中关村大街1号。"  # noqa: RUF001
    assert mask_text(notice) == f"[masked: {len(notice)} characters]"
    assert mask_text("Call +8613800138000") == "[masked: 19 characters]"


@pytest.mark.parametrize(
    ("key", "channel", "to", "text", "field"),
    [
        ("", Channel.SMS, PHONE, "hi", "idempotency_key"),
        ("k", None, PHONE, "hi", "channel"),
        ("k", Channel.SMS, "", "hi", "to"),
        ("k", Channel.SMS, "13800138000", "hi", "to"),
        ("k", Channel.SMS, "+0613800138000", "hi", "to"),
        ("k", Channel.SMS, "+86 138 0013 8000", "hi", "to"),
        ("k", Channel.SMS, "+8613800138000123", "hi", "to"),
        ("k", Channel.VOICE, PHONE, "   ", "text"),
        ("k", Channel.VOICE, PHONE, "x" * 2001, "text"),
    ],
)
def test_validation(key: str, channel: Channel | None, to: str, text: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate(key, channel, to, "", text)
    assert exc.value.field == field


def test_send_is_idempotent_on_key() -> None:
    gateway = make_gateway()
    first = gateway.send(validate("k1", Channel.SMS, PHONE, "zh-CN", "hello"))
    again = gateway.send(validate("k1", Channel.SMS, PHONE, "zh-CN", "hello"))
    other = gateway.send(validate("k2", Channel.VOICE, PHONE, "", "hello"))
    assert first.duplicate is False and again.duplicate is True
    assert first.delivery.delivery_id == again.delivery.delivery_id == "dlv-1"
    assert other.delivery.delivery_id == "dlv-2"
    deliveries = gateway.deliveries()
    assert [d.delivery_id for d in deliveries] == ["dlv-1", "dlv-2"]
    assert [d.attempts for d in deliveries] == [2, 1]


def test_failures_count_as_attempts_and_deliver_nothing() -> None:
    gateway = make_gateway(Faults(failure_rate=1.0))
    for _ in range(3):
        with pytest.raises(Unavailable):
            gateway.send(validate("k1", Channel.SMS, PHONE, "", "hello"))
    assert gateway.deliveries() == []
    assert gateway.attempts("k1") == 3
    gateway.configure(0.0, 0)
    result = gateway.send(validate("k1", Channel.SMS, PHONE, "", "hello"))
    assert result.delivery.attempts == 4
    assert result.duplicate is False


def test_failure_rate_is_a_share_of_sends() -> None:
    gateway = make_gateway(Faults(failure_rate=0.3), seed=42)
    failed = 0
    for n in range(2000):
        try:
            gateway.send(validate(f"k{n}", Channel.SMS, PHONE, "", "hello"))
        except Unavailable:
            failed += 1
    assert 500 < failed < 700


@pytest.mark.parametrize(
    ("rate", "delay", "field"),
    [
        (-0.1, 0, "failure_rate"),
        (1.5, 0, "failure_rate"),
        (float("nan"), 0, "failure_rate"),
        (0.5, -1, "delay_ms"),
        (0.5, 10_000_000, "delay_ms"),
    ],
)
def test_fault_configuration_is_checked(rate: float, delay: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_faults(rate, delay)
    assert exc.value.field == field


# --- delivery reports ----------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _reporting_gateway(faults: Faults, seed: int = 0) -> tuple[Gateway, _Clock]:
    clock = _Clock()
    ids = (f"dlv-{n}" for n in itertools.count(1))
    return Gateway(faults, rng=random.Random(seed), clock=clock, new_id=lambda: next(ids)), clock


def test_a_delivery_is_pending_until_the_report_delay_then_delivered() -> None:
    from datetime import timedelta

    from orderline_simulators.gateway.domain import DeliveryStatus

    gateway, clock = _reporting_gateway(Faults(report_delay_ms=500))
    sent = gateway.send(validate("k", Channel.SMS, PHONE, "zh-CN", "hi"))
    assert sent.delivery.status(clock()) is DeliveryStatus.PENDING
    assert sent.delivery.report_in(clock()) == timedelta(milliseconds=500)
    clock.now += timedelta(milliseconds=499)
    found = gateway.delivery(sent.delivery.delivery_id)
    assert found is not None and found.status(clock()) is DeliveryStatus.PENDING
    assert found.report_in(clock()) == timedelta(milliseconds=1)
    clock.now += timedelta(milliseconds=1)
    assert found.status(clock()) is DeliveryStatus.DELIVERED
    assert found.report_in(clock()) == timedelta(0)
    assert found.failure_reason(clock()) == ""
    assert gateway.delivery("dlv-unknown") is None


def test_an_injected_delivery_failure_is_reported_failed_and_stays_so() -> None:
    from orderline_simulators.gateway.domain import UNREACHABLE, DeliveryStatus

    gateway, clock = _reporting_gateway(Faults(delivery_failure_rate=1.0))
    sent = gateway.send(validate("k", Channel.VOICE, PHONE, "en", "hi"))
    assert sent.delivery.status(clock()) is DeliveryStatus.FAILED
    assert sent.delivery.failure_reason(clock()) == UNREACHABLE
    # A repeat of the key is the same message: the same failed report, nothing new sent.
    again = gateway.send(validate("k", Channel.VOICE, PHONE, "en", "hi"))
    assert again.duplicate and again.delivery.status(clock()) is DeliveryStatus.FAILED
    # A new key is a new message, delivered once the failures are switched off.
    gateway.configure(0.0, 0, delivery_failure_rate=0.0)
    other = gateway.send(validate("k2", Channel.SMS, PHONE, "en", "hi"))
    assert other.delivery.status(clock()) is DeliveryStatus.DELIVERED


def test_configure_keeps_the_delivery_faults_it_is_not_given() -> None:
    gateway, _ = _reporting_gateway(Faults(delivery_failure_rate=0.5, report_delay_ms=300))
    faults = gateway.configure(1.0, 0)
    assert (faults.failure_rate, faults.delivery_failure_rate, faults.report_delay_ms) == (
        1.0,
        0.5,
        300,
    )
    with pytest.raises(InvalidArgument) as exc:
        gateway.configure(0.0, 0, delivery_failure_rate=1.5)
    assert exc.value.field == "delivery_failure_rate"
    with pytest.raises(InvalidArgument) as exc:
        gateway.configure(0.0, 0, report_delay_ms=-1)
    assert exc.value.field == "report_delay_ms"
