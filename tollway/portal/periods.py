"""A period a visitor chooses in a form, as days in its own time zone: from the first day's midnight to the
midnight after the last (both days included), the instants the services take as ``[since, until)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.portal.staff import day_of

DAYS_TYPED_MAX = 10  # "2026-12-07"
YEARS = range(1970, 9000)  # days outside them are refused: their midnights would overflow in some zones


@dataclass(frozen=True, slots=True)
class Period:
    first_day: date
    last_day: date  # included
    since: datetime  # the first day's midnight, in the visitor's time zone
    until: datetime  # the midnight after the last day

    @property
    def day_count(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def days(self) -> list[date]:
        """Every day of the period: for short periods (the caller bounds ``day_count`` first)."""
        return [self.first_day + timedelta(days=offset) for offset in range(self.day_count)]


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today(time_zone: str) -> date:
    return utc_now().astimezone(zone(time_zone)).date()


def _typed(text: str, default: date) -> date:
    day = day_of(text, default)
    if text and day.year not in YEARS:
        raise Refusal("day_invalid", f"{text!r} is too far in the past or the future")
    return day


def midnight(day: date, time_zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone(time_zone))


def period_of(first: str, last: str, *, time_zone: str, first_default: date, last_default: date) -> Period:
    """The days typed (YYYY-MM-DD, empty for the default), the last one included; refused when backwards."""
    first_day, last_day = _typed(first, first_default), _typed(last, last_default)
    if last_day < first_day:
        raise Refusal("period_invalid", "the first day comes before the last")
    return Period(
        first_day, last_day, midnight(first_day, time_zone), midnight(last_day + timedelta(days=1), time_zone)
    )


def optional_period(first: str, last: str, *, time_zone: str) -> tuple[datetime | None, datetime | None]:
    """Either end may be left empty (no bound on that side): (since, until) for a list's filter."""
    first_day = _typed(first, date.min) if first else None
    last_day = _typed(last, date.max) if last else None
    if first_day is not None and last_day is not None and last_day < first_day:
        raise Refusal("period_invalid", "the first day comes before the last")
    since = midnight(first_day, time_zone) if first_day else None
    until = midnight(last_day + timedelta(days=1), time_zone) if last_day else None
    return since, until
