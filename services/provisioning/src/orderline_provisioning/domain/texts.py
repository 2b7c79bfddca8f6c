"""Texts that reach the customer, in the two locales we serve: `zh-CN` (default) and `en`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

ZH_CN = "zh-CN"
EN = "en"
LOCALES: tuple[str, ...] = (ZH_CN, EN)
DEFAULT_LOCALE = ZH_CN

# The operator's local time (China Standard Time, no daylight saving) for times in texts.
OPERATOR_TZ = timezone(timedelta(hours=8), "UTC+8")

BUSINESS_LABELS: Mapping[str, Mapping[str, str]] = {
    "broadband_install": {ZH_CN: "宽带新装", EN: "broadband installation"},
    "fixed_line": {ZH_CN: "固定电话", EN: "fixed line"},
    "dedicated_line": {ZH_CN: "专线", EN: "dedicated line"},
    "plan_change": {ZH_CN: "套餐变更", EN: "plan change"},
    "iptv": {ZH_CN: "网络电视", EN: "IPTV"},
    "relocation": {ZH_CN: "移机", EN: "relocation"},
    "termination": {ZH_CN: "拆机", EN: "termination"},
}


def normalize_locale(locale: str | None) -> str:
    """`en`, `en-US`, `en_GB` → `en`; `zh`, `zh-Hans-CN`, anything else or nothing → `zh-CN`."""
    tag = (locale or "").strip().replace("_", "-").lower()
    if tag == "en" or tag.startswith("en-"):
        return EN
    return DEFAULT_LOCALE


def business_label(business_type: str, locale: str) -> str:
    labels = BUSINESS_LABELS.get(business_type)
    if labels is None:
        return business_type.replace("_", " ")
    return labels[normalize_locale(locale)]


def local_time(at: datetime) -> str:
    return at.astimezone(OPERATOR_TZ).strftime("%Y-%m-%d %H:%M")
