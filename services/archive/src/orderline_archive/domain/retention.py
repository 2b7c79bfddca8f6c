"""How long the archive keeps a record: years after the order's completion, by business type.

The business catalogue (libs/catalogue) has no retention field, so the table is here, with no
setting: changing it is a reviewed code change, as a retention policy should be. A business
type the table does not know is kept as long as the longest entry. Addenda go with their
order's dossier (the same date); a daily report is kept `DAILY_REPORT_YEARS`; a tombstone, the
trace of a purge, is kept for ever (None).

A record is past its retention once the injected clock reaches `retain_until`; it is purged
only by an auditor's explicit PurgeExpired (app/purge.py), never automatically.
"""

from __future__ import annotations

from datetime import datetime

RETENTION_YEARS: dict[str, int] = {
    "broadband_install": 3,
    "fixed_line": 3,
    "dedicated_line": 5,  # business customers' contracts and their audits
    "plan_change": 2,
    "iptv": 2,
    "relocation": 3,
    "termination": 5,  # the end of a contract: kept as long as the longest
}
DEFAULT_YEARS = max(RETENTION_YEARS.values())
DAILY_REPORT_YEARS = 5


def add_years(moment: datetime, years: int) -> datetime:
    """The same instant `years` later; 29 February becomes 28 February in a common year."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def retention_years(kind: str, business_type: str) -> int | None:
    if kind == "tombstone":
        return None
    if kind == "daily_report":
        return DAILY_REPORT_YEARS
    return RETENTION_YEARS.get(business_type, DEFAULT_YEARS)


def retain_until(kind: str, business_type: str, completed_at: datetime) -> datetime | None:
    """When a record completed (sealed) at `completed_at` may be purged; None: never."""
    years = retention_years(kind, business_type)
    return None if years is None else add_years(completed_at, years)


def past_retention(until: datetime | None, now: datetime) -> bool:
    return until is not None and now >= until
