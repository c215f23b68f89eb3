"""Rate rows and rate selection (DESIGN.md section 3). Pure.

Among the rows whose weekly window and validity contain the call's start instant (in the tariff's
time zone), the longest matching prefix wins; no row means the call is refused (``no_rate``).

A weekly window is a range of days (0 = Monday; ``from_day`` > ``to_day`` wraps past Sunday) and a
range of times of day (``to_time`` exclusive; ``from_time`` > ``to_time`` wraps past midnight). The
day and the time are checked on their own: a Monday-Friday 22:00-06:00 window covers Friday 23:00
and Friday 01:00, not Saturday 01:00.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from tollway.rating.cost import Pricing

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    from_day: int = 0
    to_day: int = 6
    from_time: time = time(0, 0)
    to_time: time | None = None  # None: to the end of the day

    def days(self) -> frozenset[int]:
        if self.from_day <= self.to_day:
            return frozenset(range(self.from_day, self.to_day + 1))
        return frozenset(range(self.from_day, 7)) | frozenset(range(0, self.to_day + 1))

    def seconds(self) -> list[tuple[int, int]]:
        """The times of day covered, as half-open intervals of seconds."""
        start = _seconds(self.from_time)
        end = SECONDS_PER_DAY if self.to_time is None else _seconds(self.to_time)
        if start < end:
            return [(start, end)]
        return [(start, SECONDS_PER_DAY), (0, end)]  # wraps past midnight (start == end: all day)

    def contains(self, local: datetime) -> bool:
        second = local.hour * 3600 + local.minute * 60 + local.second
        return local.weekday() in self.days() and any(a <= second < b for a, b in self.seconds())

    def overlaps(self, other: WeeklyWindow) -> bool:
        if not self.days() & other.days():
            return False
        return any(a < d and c < b for a, b in self.seconds() for c, d in other.seconds())


ALWAYS = WeeklyWindow()


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


@dataclass(frozen=True, slots=True)
class RateRow:
    prefix: str
    description: str
    pricing: Pricing
    window: WeeklyWindow = ALWAYS
    valid_from: datetime | None = None  # aware; inclusive
    valid_to: datetime | None = None  # aware; exclusive

    def valid_at(self, instant: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= instant) and (
            self.valid_to is None or instant < self.valid_to
        )

    def overlaps(self, other: RateRow) -> bool:
        """Both rows could price the same instant for the same prefix: an import error."""
        if self.prefix != other.prefix or not self.window.overlaps(other.window):
            return False
        starts_before_other_ends = other.valid_to is None or self.valid_from is None or self.valid_from < other.valid_to
        ends_after_other_starts = self.valid_to is None or other.valid_from is None or other.valid_from < self.valid_to
        return starts_before_other_ends and ends_after_other_starts


class RateTable:
    """Longest-prefix lookup: at most one dictionary probe per digit of the number."""

    def __init__(self, rows: Iterable[RateRow], *, time_zone: str) -> None:
        self.time_zone = ZoneInfo(time_zone)
        self._by_prefix: dict[str, list[RateRow]] = {}
        for row in rows:
            self._by_prefix.setdefault(row.prefix, []).append(row)
        self._longest = max((len(p) for p in self._by_prefix), default=0)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._by_prefix.values())

    def select(self, number: str, instant: datetime) -> RateRow | None:
        """The row that prices a call to ``number`` (E.164 digits) starting at ``instant`` (aware)."""
        local = instant.astimezone(self.time_zone)
        for length in range(min(len(number), self._longest), 0, -1):
            rows = self._by_prefix.get(number[:length])
            if rows:
                for row in rows:
                    if row.valid_at(instant) and row.window.contains(local):
                        return row
        return None


def overlapping_pairs(rows: Iterable[RateRow]) -> list[tuple[RateRow, RateRow]]:
    """Pairs of rows that could both price one instant for one prefix (refused at import)."""
    by_prefix: dict[str, list[RateRow]] = {}
    for row in rows:
        by_prefix.setdefault(row.prefix, []).append(row)
    pairs: list[tuple[RateRow, RateRow]] = []
    for same in by_prefix.values():
        for i, first in enumerate(same):
            pairs.extend((first, second) for second in same[i + 1 :] if first.overlaps(second))
    return pairs
