# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""Telephone numbers in E.164, and mainland China mobile numbers against the number plan."""

from __future__ import annotations

import re

from orderline_intake.domain.text import Says, says

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CHINA = "+86"

# Mainland mobile numbers (11 digits, starting with 1) are issued only under these prefixes of
# the MIIT numbering plan: the 3-digit blocks open to subscribers and, for 174, the satellite
# sub-blocks 17400-17405. 140-144, 146 and 148 hold 13-digit IoT numbers, not phones.
MOBILE_PREFIXES = frozenset(
    {f"13{d}" for d in "0123456789"}
    | {"145", "147", "149"}
    | {"150", "151", "152", "153", "155", "156", "157", "158", "159"}
    | {"162", "165", "166", "167"}
    | {"170", "171", "172", "173", "175", "176", "177", "178"}
    | {f"1740{d}" for d in "012345"}
    | {f"18{d}" for d in "0123456789"}
    | {"190", "191", "192", "193", "195", "196", "197", "198", "199"}
)
# Fixed lines: the area code without its trunk 0 (10 for Beijing, else 2-3 digits from 2 to 9),
# then a 7-8 digit subscriber number.
_MAINLAND_FIXED = re.compile(r"^(?:10\d{8}|[2-9]\d{8,10})$")
_MOBILE_RANGE = re.compile(r"^1[3-9]")


def is_mainland_mobile(phone: str) -> bool:
    national = phone[len(CHINA) :] if phone.startswith(CHINA) else ""
    return len(national) == 11 and any(national.startswith(p) for p in MOBILE_PREFIXES)


def phone_problem(phone: str) -> Says | None:
    """What is wrong with a phone number, or None when it is valid."""
    if not _E164.match(phone):
        return says("E.164 number, e.g. +8613800138000", "应为E.164格式号码，如+8613800138000")
    if not phone.startswith(CHINA):
        return None
    national = phone[len(CHINA) :]
    if _MOBILE_RANGE.match(national):
        if len(national) != 11:
            return says(
                "a mainland mobile number has 11 digits after +86",
                "中国大陆手机号码应为+86后11位数字",
            )
        if not is_mainland_mobile(phone):
            return says(
                f"{national[:3]} is not an allocated mainland mobile prefix",
                f"{national[:3]}不是已分配的手机号段",
            )
        return None
    if not _MAINLAND_FIXED.match(national):
        return says(
            "not a mainland number: a mobile 13x-19x or an area code and number",
            "不是有效的中国大陆号码",
        )
    return None
