# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""Identity documents: the PRC resident identity number (居民身份证号码) and the passport.

A resident identity number (GB 11643-1999) has 18 characters: a 6-digit administrative region
code (GB/T 2260), the birth date as YYYYMMDD, a 3-digit sequence (odd for men, even for women)
and a check character computed with ISO 7064 MOD 11-2 over the first 17 digits, where 10 is
written X.
"""

from __future__ import annotations

import re
from datetime import date

from orderline_intake.domain.text import Says, says

# ISO 7064 MOD 11-2: the weight of position i (0-based, left to right) is 2^(17-i) mod 11.
WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
CHECK_CHARACTERS = "10X98765432"  # indexed by the weighted sum mod 11

# Province-level prefixes of GB/T 2260 under which identity numbers are issued; 81, 82 and 83
# are the residence permits of Hong Kong, Macao and Taiwan residents.
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "81", "82", "83",
    }
)  # fmt: skip
PERMIT_PROVINCES = frozenset({"81", "82", "83"})
EARLIEST_BIRTH = date(1900, 1, 1)

_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
_PASSPORT_NUMBER = re.compile(r"^[A-Z0-9]{5,20}$")
_COUNTRY = re.compile(r"^[A-Z]{3}$")


def check_character(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


def birth_date(resident_id: str) -> date | None:
    try:
        return date(int(resident_id[6:10]), int(resident_id[10:12]), int(resident_id[12:14]))
    except ValueError:
        return None


def resident_id_problem(resident_id: str, today: date) -> Says | None:
    """What is wrong with a resident identity number, or None when it is valid.

    The answer never repeats a part of the number: errors are logged, and the number's region
    and birth date are personal data.
    """
    if not _RESIDENT_ID.match(resident_id):
        return says(
            "18 characters: 17 digits and a digit or X",
            "应为18位：17位数字加1位数字或X",
        )
    region = resident_id[:6]
    # A person's region is a county-level code: a real province and not the province itself
    # (only the residence permits of 81, 82 and 83 use the province-level code).
    if region[:2] not in PROVINCES or (region[2:] == "0000" and region[:2] not in PERMIT_PROVINCES):
        return says(
            "region code (first 6 digits) is not a region of China",
            "地区码（前6位）不是有效的行政区划代码",
        )
    born = birth_date(resident_id)
    if born is None or born < EARLIEST_BIRTH:
        return says(
            "birth date (digits 7-14) is not a valid date",
            "出生日期（第7至14位）无效",
        )
    if born > today:
        return says(
            "birth date (digits 7-14) is in the future",
            "出生日期（第7至14位）晚于今天",
        )
    if resident_id[14:17] == "000":
        return says("sequence code 000 is never issued", "顺序码不能为000")
    if check_character(resident_id[:17]) != resident_id[17]:
        return says(
            "check digit does not match (GB 11643)",
            "校验码不正确（GB 11643）",
        )
    return None


def passport_number_problem(number: str) -> Says | None:
    if not _PASSPORT_NUMBER.match(number):
        return says("5-20 letters and digits", "应为5至20位字母或数字")
    return None


def issuing_country_problem(country: str) -> Says | None:
    if not _COUNTRY.match(country):
        return says(
            "ISO 3166-1 alpha-3 country code, e.g. CHN, GBR",
            "应为ISO 3166-1三字母国家代码，如CHN、GBR",
        )
    return None
