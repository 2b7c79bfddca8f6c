"""Texts that reach the customer, in the two locales we serve: `zh-CN` (default) and `en`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orderline_catalogue import load_catalogue

ZH_CN = "zh-CN"
EN = "en"
LOCALES: tuple[str, ...] = (ZH_CN, EN)
DEFAULT_LOCALE = ZH_CN

# The operator's local time (China Standard Time, no daylight saving) for times in texts.
OPERATOR_TZ = timezone(timedelta(hours=8), "UTC+8")


def normalize_locale(locale: str | None) -> str:
    """`en`, `en-US`, `en_GB` → `en`; `zh`, `zh-Hans-CN`, anything else or nothing → `zh-CN`."""
    tag = (locale or "").strip().replace("_", "-").lower()
    if tag == "en" or tag.startswith("en-"):
        return EN
    return DEFAULT_LOCALE


def business_label(business_type: str, locale: str) -> str:
    """The business type's name from the catalogue as it reads inside a sentence."""
    business = load_catalogue().get(business_type)
    if business is None:
        return business_type.replace("_", " ")
    locale = normalize_locale(locale)
    name = business.names[locale]
    return _in_sentence(name) if locale == EN else name


def _in_sentence(name: str) -> str:
    # "Broadband installation" -> "broadband installation", but "IPTV" stays an acronym.
    first = name.split(" ", 1)[0]
    return name if first.isupper() else name[:1].lower() + name[1:]


def local_time(at: datetime) -> str:
    return at.astimezone(OPERATOR_TZ).strftime("%Y-%m-%d %H:%M")
