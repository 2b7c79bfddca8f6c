"""Labels that reach a manager (report exports), in every language we write: en and zh-CN.

State names are TMF641's; business type names come from the business catalogue, the one file
intake and provisioning read too. An unknown key is shown as itself rather than hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from orderline_catalogue import BUSINESS_TYPE_NAMES
from orderline_reporting.domain import states as s

LOCALES = ("en", "zh-CN")
DEFAULT_LOCALE = "en"

STATE_LABELS: Mapping[str, Mapping[str, str]] = {
    s.ACKNOWLEDGED: {"en": "Acknowledged", "zh-CN": "已受理"},
    s.PENDING: {"en": "Pending information", "zh-CN": "待补充资料"},
    s.IN_PROGRESS: {"en": "In progress", "zh-CN": "处理中"},
    s.HELD: {"en": "Held", "zh-CN": "已挂起"},
    s.ASSESSING_CANCELLATION: {"en": "Assessing cancellation", "zh-CN": "撤单评估中"},
    s.PENDING_CANCELLATION: {"en": "Pending cancellation", "zh-CN": "待撤单"},
    s.COMPLETED: {"en": "Completed", "zh-CN": "已完成"},
    s.REJECTED: {"en": "Rejected", "zh-CN": "已驳回"},
    s.FAILED: {"en": "Failed", "zh-CN": "失败"},
    s.CANCELLED: {"en": "Cancelled", "zh-CN": "已撤单"},
}

# Read from the business catalogue (orderline_catalogue) when first used.
BUSINESS_TYPE_LABELS: Mapping[str, Mapping[str, str]] = BUSINESS_TYPE_NAMES


def _label(table: Mapping[str, Mapping[str, str]], key: str, locale: str) -> str:
    names = table.get(key)
    if names is None:
        return key
    return names.get(locale) or names[DEFAULT_LOCALE]


def state_label(state: str, locale: str = DEFAULT_LOCALE) -> str:
    """completed -> "Completed" (en) or "已完成" (zh-CN)."""
    return _label(STATE_LABELS, state, locale)


def business_type_label(business_type: str, locale: str = DEFAULT_LOCALE) -> str:
    """broadband_install -> "Broadband installation" (en) or "宽带新装" (zh-CN)."""
    return _label(BUSINESS_TYPE_LABELS, business_type, locale)
