# Customer texts use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""The notice that tells the customer what was done, and how it reaches them.

Pure. The notify step (app/steps.py) sends one message at a time through the gateway and waits
for its delivery report; every send the gateway refuses and every message it reports
undelivered is one failed attempt. The channel starts at the customer's preferred one; after
`failures_before_switch` failures, the other channel and the preferred one take turns (the
other first), so whichever route works delivers. After `max_attempts` failed attempts the
customer is not reached: the job goes to the clerk (the fallout queue, CUSTOMER_NOT_REACHED).
Never retried forever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orderline_provisioning.domain.texts import EN, business_label, normalize_locale

# Failures on the preferred channel before the other channel is tried.
SMS_FAILURES_BEFORE_VOICE = 5
# Failed attempts (sends refused, messages undelivered) before the customer is not reached.
MAX_NOTIFY_ATTEMPTS = 10

# The reason a job waits for the clerk when no notice reached the customer.
CUSTOMER_NOT_REACHED = "CUSTOMER_NOT_REACHED"


class Channel(enum.StrEnum):
    SMS = "sms"
    VOICE = "voice"


def preferred_channel(preference: str) -> Channel:
    """The customer's preferred channel as intake gives it (`phone` → voice; sms, unset or
    anything else → SMS)."""
    return Channel.VOICE if preference.strip().lower() in {"phone", "voice"} else Channel.SMS


def channel_for(
    failures: int,
    failures_before_switch: int = SMS_FAILURES_BEFORE_VOICE,
    preferred: Channel = Channel.SMS,
) -> Channel:
    """The preferred channel first; once it has failed that many times, the other channel and
    the preferred one take turns (the other first)."""
    other = Channel.VOICE if preferred is Channel.SMS else Channel.SMS
    if failures < failures_before_switch:
        return preferred
    return other if (failures - failures_before_switch) % 2 == 0 else preferred


def notify_key(job_id: str, undelivered: int, suffix: str = "") -> str:
    """The gateway key of the next message: `<job>:notify` for the first; a message the gateway
    reported undelivered is never sent again under its key (the gateway would answer with the
    same failed delivery), so the n-th new message is `<job>:notify:<n>`. A send the gateway
    refused (nothing accepted) repeats its key. `suffix`: a fallout retry's `:retry<k>`."""
    base = f"{job_id}:notify" if undelivered == 0 else f"{job_id}:notify:{undelivered}"
    return base + suffix


def attempts_left(failures: int, max_attempts: int = MAX_NOTIFY_ATTEMPTS) -> bool:
    """False once the failed attempts reach the bound: the customer is not reached."""
    return failures < max_attempts


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryReport:
    delivery_id: str
    status: DeliveryStatus
    # Why it failed (the gateway's code, e.g. UNREACHABLE).
    failure_reason: str = ""


def not_reached_detail(failures: int, channels: str, last: str) -> str:
    return f"customer not reached after {failures} attempts ({channels}); last: {last}"


def customer_message(
    locale: str,
    business_type: str,
    voucher_id: str,
    *,
    action: str = "activate",
    new_address: str = "",
) -> str:
    """The notice sent to the customer, in their locale (zh-CN unless they chose English):
    a service switched off (the type's template says `activation: deactivate`, a termination)
    says it was stopped; an order that moves the service (it carries a new address, a
    relocation) names the new address; otherwise the service is active."""
    en = normalize_locale(locale) == EN
    label = business_label(business_type, EN if en else locale)
    if action == "deactivate":
        if en:
            return (
                f"[Orderline] Your {label} request is done: your service has been stopped. "
                f"Reference: {voucher_id}. Questions? Call 10000."
            )
        return (
            f"【Orderline】尊敬的客户，您的{label}申请已办理完成，相关业务已停止服务，"
            f"业务凭证号：{voucher_id}。如有疑问请致电 10000。"
        )
    if new_address.strip():
        address = new_address.strip()
        if en:
            return (
                f"[Orderline] Your {label} is done: your service is now active at your new "
                f"address, {address}. Activation voucher: {voucher_id}. Questions? Call 10000."
            )
        return (
            f"【Orderline】尊敬的客户，您的{label}业务已完成，服务已在新地址{address}开通，"
            f"业务开通凭证号：{voucher_id}。如有疑问请致电 10000。"
        )
    return activation_message(locale, business_type, voucher_id)


def activation_message(locale: str, business_type: str, voucher_id: str) -> str:
    """The text sent to the customer, in their locale (zh-CN unless they chose English)."""
    if normalize_locale(locale) == EN:
        return (
            f"[Orderline] Your {business_label(business_type, EN)} service is now active. "
            f"Activation voucher: {voucher_id}. Questions? Call 10000."
        )
    return (
        f"【Orderline】尊敬的客户，您的{business_label(business_type, locale)}业务已开通，"
        f"业务开通凭证号：{voucher_id}。如有疑问请致电 10000。"
    )
