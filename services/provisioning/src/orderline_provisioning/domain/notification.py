# Customer texts use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""The notification that tells the customer the service is active."""

from __future__ import annotations

import enum

from orderline_provisioning.domain.texts import EN, business_label, normalize_locale

# SMS sends the gateway may fail before voice is tried.
SMS_FAILURES_BEFORE_VOICE = 5


class Channel(enum.StrEnum):
    SMS = "sms"
    VOICE = "voice"


def channel_for(
    failures: int, sms_failures_before_voice: int = SMS_FAILURES_BEFORE_VOICE
) -> Channel:
    """SMS first; once SMS has failed that many times, voice and SMS take turns (voice first),
    so that whichever route recovers first delivers. Never gives up."""
    if failures < sms_failures_before_voice:
        return Channel.SMS
    return Channel.VOICE if (failures - sms_failures_before_voice) % 2 == 0 else Channel.SMS


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
