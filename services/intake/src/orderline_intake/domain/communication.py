"""The order's communication log: calls, SMS and notes, each with its channel, direction,
actor, time and a short text. Customer phone numbers never stay in clear in a text: they are
masked before an entry is kept (a clerk naturally writes "call back on 139…")."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from orderline_intake.domain.text import says
from orderline_runtime.errors import Violations
from orderline_runtime.pii import mask_phone

MAX_TEXT = 500
# A logged call may be written down after it ended, but not long after: older entries are
# history someone reconstructs, and the log's order (oldest first) would become a guess.
MAX_BACKDATE_DAYS = 30


class Channel(enum.StrEnum):
    CALL = "call"
    SMS = "sms"
    NOTE = "note"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class Communication:
    id: str
    order_id: str
    channel: Channel
    direction: Direction
    actor: str
    at: datetime
    text: str
    delivery_id: str = ""


# Anything that dials: an optional +, then 7 to 15 digits, possibly split by spaces, dots or
# dashes (E.164 allows 15; 7 is the shortest local number worth hiding). Bounded by ASCII
# letters and digits only: in Chinese text a number sits right against the characters.
# Order ids and voucher ids mix letters in, so they stay readable; dates are let through.
_PHONE_LIKE = re.compile(r"(?<![A-Za-z0-9+])\+?\d(?:[ .\-]?\d){6,14}(?![A-Za-z0-9])")
_DATE = re.compile(r"\d{4}([-.])\d{1,2}\1\d{1,2}")


def _masked(match: re.Match[str]) -> str:
    found = match.group()
    if _DATE.fullmatch(found):
        return found
    return mask_phone(re.sub(r"[ .\-]", "", found))


def mask_phones(text: str) -> str:
    """Every phone-number-like run of digits in `text`, masked as mask_phone does."""
    return _PHONE_LIKE.sub(_masked, text)


def checked_text(text: str, violations: Violations, field: str = "text") -> str:
    """The text to keep: stripped, 1..MAX_TEXT characters, phone numbers masked."""
    text = text.strip()
    if not text:
        violations.add(field, str(says("required", "必填")))
    elif len(text) > MAX_TEXT:
        violations.add(
            field,
            str(says(f"at most {MAX_TEXT} characters", f"最多{MAX_TEXT}个字符")),
        )
    return mask_phones(text)


def notification_text(channel: str, delivery_id: str) -> str:
    """The log's line for the activation notice provisioning sent (no content: the notice
    itself carries the voucher, and the log needs only that it went out and how)."""
    how = "automated voice call" if channel == "voice" else "SMS"
    zh = "语音外呼" if channel == "voice" else "短信"
    tail = f" (delivery {delivery_id})" if delivery_id else ""
    return str(says(f"activation notice sent by {how}{tail}", f"已通过{zh}发送开通通知"))


def not_reached_text(channel: str, attempts: int) -> str:
    """The clerk's task when provisioning gave up reaching the customer (the job waits in the
    fallout queue as CUSTOMER_NOT_REACHED): call them."""
    how = "automated voice call" if channel == "voice" else "SMS"
    zh = "语音外呼" if channel == "voice" else "短信"
    return str(
        says(
            f"customer not reached: {attempts} attempts, the last by {how}; call the customer "
            "and have the job retried",
            f"未能联系到客户：共尝试{attempts}次，最后一次为{zh}；请致电客户并重试开通通知",  # noqa: RUF001
        )
    )


def confirmed_text() -> str:
    """The customer confirmed the service works (provisioning's ConfirmActivation)."""
    return str(says("customer confirmed the service works", "客户确认服务已正常开通"))


def feedback_text(score: int, comment: str) -> str:
    """The customer's satisfaction (provisioning's RecordFeedback), comment as given (its
    phone numbers masked, as every text in the log)."""
    tail = f": {comment}" if comment else ""
    return mask_phones(
        str(says(f"customer feedback {score}/5{tail}", f"客户满意度{score}/5{tail}"))
    )[:MAX_TEXT]


def call_channel(channel: str) -> Channel:
    """A clerk's contact as provisioning names it (call, sms, visit) as a log channel."""
    return {"call": Channel.CALL, "sms": Channel.SMS}.get(channel, Channel.NOTE)


def notification_channel(channel: str) -> Channel:
    """Provisioning's notification channel (sms, voice) as a log channel."""
    return Channel.CALL if channel == "voice" else Channel.SMS


@dataclass(frozen=True)
class Notification:
    """What provisioning's customer_notified event says about the notice it sent."""

    channel: str
    delivery_id: str
