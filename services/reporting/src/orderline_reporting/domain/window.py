"""A report's window: which local days it covers, how it buckets them, in which language.

A request names a period (`day`, `week` or `month`: the buckets of the orders-by-period
table), a first and a last local date (both included), a time zone and a language; anything
left empty takes its default (the last 7 days up to today, by day, in Asia/Shanghai, in
English). Every bad value is named at once, by field path, as INVALID_ARGUMENT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orderline_reporting.domain.labels import LOCALES
from orderline_runtime.errors import Violations

PERIODS = ("day", "week", "month")
FORMATS = ("csv", "html")
REPORTS = ("orders", "stages", "reviews", "devices", "customers", "all")
DEFAULT_PERIOD = "day"
# The operator's managers read reports by the local day of mainland China.
DEFAULT_TIME_ZONE = "Asia/Shanghai"
DEFAULT_DAYS = 7
MAX_DAYS = 366


def zone(name: str) -> tzinfo:
    """An IANA zone; Asia/Shanghai is known even where the system has no zone database (it has
    had no daylight saving since 1991)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name == DEFAULT_TIME_ZONE:
            return timezone(timedelta(hours=8), DEFAULT_TIME_ZONE)
        raise


@dataclass(frozen=True)
class Window:
    period: str
    first_day: date
    last_day: date  # included
    time_zone: str
    language: str

    @property
    def tz(self) -> tzinfo:
        return zone(self.time_zone)

    @property
    def start(self) -> datetime:
        """The first instant of the window, UTC."""
        return datetime.combine(self.first_day, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the window, UTC."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), self.tz).astimezone(UTC)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def bucket(self, at: datetime) -> date:
        """The first local day of the period `at` falls in (weeks start on Monday)."""
        day = self.local_day(at)
        if self.period == "week":
            return day - timedelta(days=day.weekday())
        if self.period == "month":
            return day.replace(day=1)
        return day

    def label(self) -> str:
        return f"{self.first_day.isoformat()} ~ {self.last_day.isoformat()}"


def _date(text: str, field: str, v: Violations) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        v.add(field, "a date as YYYY-MM-DD | 日期格式应为 YYYY-MM-DD")
        return None


def parse_window(
    *,
    now: datetime,
    period: str = "",
    start_date: str = "",
    end_date: str = "",
    time_zone: str = "",
    language: str = "",
    prefix: str = "query.",
) -> Window:
    """The window a request asks for, `now` (the injected clock) giving today's date."""
    v = Violations()
    period = period or DEFAULT_PERIOD
    if period not in PERIODS:
        v.add(
            f"{prefix}period",
            f"one of {', '.join(PERIODS)} | 应为 {'、'.join(PERIODS)} 之一",
        )
    time_zone = time_zone or DEFAULT_TIME_ZONE
    tz: tzinfo = UTC
    try:
        tz = zone(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        v.add(f"{prefix}time_zone", "an IANA time zone, e.g. Asia/Shanghai | 应为 IANA 时区名")
    language = language or LOCALES[0]
    if language not in LOCALES:
        v.add(f"{prefix}language", f"one of {', '.join(LOCALES)} | 应为 {'、'.join(LOCALES)} 之一")
    today = now.astimezone(tz).date()
    last = _date(end_date, f"{prefix}end_date", v) if end_date else today
    first: date | None
    if start_date:
        first = _date(start_date, f"{prefix}start_date", v)
    else:
        first = (last or today) - timedelta(days=DEFAULT_DAYS - 1)
    if first is not None and last is not None:
        if first > last:
            v.add(f"{prefix}start_date", "on or before end_date | 开始日期不能晚于结束日期")
        elif (last - first).days + 1 > MAX_DAYS:
            v.add(f"{prefix}end_date", f"at most {MAX_DAYS} days | 最多 {MAX_DAYS} 天")
    v.raise_if_any()
    assert first is not None and last is not None
    return Window(period, first, last, time_zone, language)


def check_export(report: str, fmt: str) -> None:
    v = Violations()
    if report not in REPORTS:
        v.add("report", f"one of {', '.join(REPORTS)} | 应为 {'、'.join(REPORTS)} 之一")
    if fmt not in FORMATS:
        v.add("format", f"one of {', '.join(FORMATS)} | 应为 {'、'.join(FORMATS)} 之一")
    v.raise_if_any()
