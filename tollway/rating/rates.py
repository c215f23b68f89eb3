"""Rate rows and rate selection (docs/design.md section 3). Pure.

Among the rows whose weekly window and validity contain the call's start instant (in the tariff's
time zone), the longest matching prefix wins; no row means the call is refused (``no_rate``).

A weekly window is a range of days (0 = Monday; ``from_day`` > ``to_day`` wraps past Sunday) and a
range of times of day (``to_time`` exclusive; ``from_time`` > ``to_time`` wraps past midnight). The
day and the time are checked on their own: a Monday-Friday 22:00-06:00 window covers Friday 23:00
and Friday 01:00, not Saturday 01:00.

``RateTable`` is built for tariffs of a million prefixes: one dictionary from prefix to rates, probed
only at the prefix lengths the tariff has, longest first; the many prefixes priced alike share one
``Rate`` object. (A sorted list searched by bisection takes less memory but measured five times
slower: its string comparisons miss the CPU caches.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from tollway.errors import Refusal
from tollway.rating.cost import Pricing

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (0 = Monday)
OFFSET_CACHE_HOURS_MAX = 100_000  # hours of UTC offsets remembered per table
PREFIX_DIGITS_MAX = 20
STEM_DIGITS = 3  # numbers are sorted by their first digits to know which prefix lengths to probe


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    from_day: int = 0
    to_day: int = 6
    from_time: time = time(0, 0)
    to_time: time | None = None  # None: to the end of the day

    def __post_init__(self) -> None:
        if not (0 <= self.from_day <= 6 and 0 <= self.to_day <= 6):
            raise Refusal("window_invalid", "days run from 0 (Monday) to 6 (Sunday)")
        for value in (self.from_time, self.to_time):
            if value is not None and (value.microsecond or value.tzinfo is not None):
                raise Refusal("window_invalid", "window times are whole seconds of the tariff's own day")

    @property
    def always(self) -> bool:
        if self is ALWAYS:
            return True
        return self.days_mask() == 0x7F and self.seconds() == [(0, SECONDS_PER_DAY)]

    def days(self) -> frozenset[int]:
        if self.from_day <= self.to_day:
            return frozenset(range(self.from_day, self.to_day + 1))
        return frozenset(range(self.from_day, 7)) | frozenset(range(0, self.to_day + 1))

    def days_mask(self) -> int:
        return sum(1 << day for day in self.days())

    def seconds(self) -> list[tuple[int, int]]:
        """The times of day covered, as half-open intervals of seconds."""
        start = seconds_of(self.from_time)
        end = SECONDS_PER_DAY if self.to_time is None else seconds_of(self.to_time)
        if start < end:
            return [(start, end)]
        if end == 0:
            return [(start, SECONDS_PER_DAY)]
        return [(start, SECONDS_PER_DAY), (0, end)]  # wraps past midnight (start == end: all day)

    def contains(self, local: datetime) -> bool:
        second = local.hour * 3600 + local.minute * 60 + local.second
        return local.weekday() in self.days() and any(a <= second < b for a, b in self.seconds())

    def overlaps(self, other: WeeklyWindow) -> bool:
        if not self.days() & other.days():
            return False
        return any(a < d and c < b for a, b in self.seconds() for c, d in other.seconds())


ALWAYS = WeeklyWindow()


def seconds_of(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def epoch_seconds(instant: datetime) -> int:
    """Whole seconds since 1970 of an aware instant (a fraction of a second is dropped)."""
    return (instant - EPOCH) // timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Rate:
    """What a prefix is priced at, when. Many prefixes share one ``Rate``."""

    description: str
    pricing: Pricing
    window: WeeklyWindow = ALWAYS
    valid_from: datetime | None = None  # aware; inclusive
    valid_to: datetime | None = None  # aware; exclusive

    def valid_at(self, instant: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= instant) and (
            self.valid_to is None or instant < self.valid_to
        )

    @property
    def unconditional(self) -> bool:
        return self.window.always and self.valid_from is None and self.valid_to is None


@dataclass(frozen=True, slots=True)
class RateRow:
    """One row of a rate sheet, its tariff's defaults already applied."""

    prefix: str
    description: str
    pricing: Pricing
    window: WeeklyWindow = ALWAYS
    valid_from: datetime | None = None  # aware; inclusive
    valid_to: datetime | None = None  # aware; exclusive

    @property
    def rate(self) -> Rate:
        return Rate(self.description, self.pricing, self.window, self.valid_from, self.valid_to)

    def valid_at(self, instant: datetime) -> bool:
        return self.rate.valid_at(instant)

    def overlaps(self, other: RateRow) -> bool:
        """Both rows could price the same instant for the same prefix: an import error."""
        if self.prefix != other.prefix or not self.window.overlaps(other.window):
            return False
        starts_before_other_ends = other.valid_to is None or self.valid_from is None or self.valid_from < other.valid_to
        ends_after_other_starts = self.valid_to is None or other.valid_from is None or other.valid_from < self.valid_to
        return starts_before_other_ends and ends_after_other_starts


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


# A rate with conditions, compiled for the hot path:
# (valid_from epoch or None, valid_to epoch or None, days bit mask, [(second from, second to)], rate).
_Conditional = tuple[int | None, int | None, int, list[tuple[int, int]], Rate]
Match = tuple[str, Rate]


def _compile(rate: Rate) -> _Conditional:
    return (
        None if rate.valid_from is None else epoch_seconds(rate.valid_from),
        None if rate.valid_to is None else epoch_seconds(rate.valid_to),
        rate.window.days_mask(),
        rate.window.seconds(),
        rate,
    )


class RateTable:
    """The rates of one tariff, ready for longest-prefix selection at an instant."""

    def __init__(self, rows: Iterable[RateRow], *, time_zone: str) -> None:
        self.time_zone_name = time_zone
        self.time_zone = ZoneInfo(time_zone)
        shared: dict[Rate, Rate] = {}
        # Built in place, in one dictionary: a prefix's only Rate is stored as it is, a list only when a
        # second row comes; then the entries with conditions are replaced by their compiled tuples. (A
        # second dictionary for the result would hold a million more entries at the peak of loading.)
        groups: dict[str, Rate | list[Rate] | tuple[_Conditional, ...]] = {}
        self._rows = 0
        for row in rows:
            rate = row.rate
            rate = shared.setdefault(rate, rate)
            self._rows += 1
            found = groups.get(row.prefix)
            if found is None:
                groups[row.prefix] = rate
            elif isinstance(found, list):
                found.append(rate)
            else:
                groups[row.prefix] = [found, rate]  # type: ignore[list-item]
        unconditional = {rate: rate.unconditional for rate in shared}
        del shared
        for prefix, found in groups.items():
            if isinstance(found, list):
                groups[prefix] = tuple(_compile(r) for r in found)
            elif isinstance(found, Rate) and not unconditional[found]:
                groups[prefix] = (_compile(found),)
        # One entry per prefix: a Rate when it always applies, else a tuple of compiled conditions.
        self._groups = cast(dict[str, Rate | tuple[_Conditional, ...]], groups)
        # Per first STEM_DIGITS digits of a number, the lengths of the prefixes that could match it,
        # longest first: a lookup probes only those.
        self._lengths = _lengths_by_stem(self._groups)
        self._all_lengths = tuple(sorted({len(prefix) for prefix in self._groups}, reverse=True))
        self._offsets: dict[int, int] = {}

    def __len__(self) -> int:
        return self._rows

    @property
    def prefixes(self) -> int:
        return len(self._groups)

    def select(self, number: str, instant: datetime) -> Match | None:
        """The (prefix, rate) that prices a call to ``number`` (E.164 digits) starting at ``instant``."""
        return self.select_at(number, epoch_seconds(instant))

    def select_at(self, number: str, epoch: int) -> Match | None:
        """``select`` with the start instant in seconds since 1970 (the batch rater's hot path)."""
        groups = self._groups
        local = -1
        lengths = self._lengths.get(number[:STEM_DIGITS], ()) if len(number) >= STEM_DIGITS else self._all_lengths
        for length in lengths:
            if length > len(number):
                continue
            prefix = number[:length]
            group = groups.get(prefix)
            if group is None:
                continue
            if type(group) is Rate:
                return prefix, group
            if local < 0:
                local = epoch + self.utc_offset(epoch)
            weekday = (local // SECONDS_PER_DAY + EPOCH_WEEKDAY) % 7
            second = local % SECONDS_PER_DAY
            for valid_from, valid_to, days, seconds, rate in group:  # type: ignore[union-attr]
                if (
                    (valid_from is None or valid_from <= epoch)
                    and (valid_to is None or epoch < valid_to)
                    and days >> weekday & 1
                    and any(start <= second < end for start, end in seconds)
                ):
                    return prefix, rate
        return None

    def utc_offset(self, epoch: int) -> int:
        """The tariff time zone's offset at ``epoch``, in seconds, remembered per hour without a change."""
        hour = epoch // SECONDS_PER_HOUR
        offset = self._offsets.get(hour)
        if offset is not None:
            return offset
        exact = _offset(self.time_zone, epoch)
        first = _offset(self.time_zone, hour * SECONDS_PER_HOUR)
        last = _offset(self.time_zone, hour * SECONDS_PER_HOUR + SECONDS_PER_HOUR - 1)
        if first == last:  # no change of offset within this hour: remember it
            if len(self._offsets) >= OFFSET_CACHE_HOURS_MAX:
                self._offsets.clear()
            self._offsets[hour] = first
        return exact

    def rows(self) -> Iterator[RateRow]:
        for prefix in sorted(self._groups):
            group = self._groups[prefix]
            for r in [group] if isinstance(group, Rate) else [c[4] for c in group]:
                yield RateRow(prefix, r.description, r.pricing, r.window, r.valid_from, r.valid_to)


def _lengths_by_stem(groups: Mapping[str, object]) -> dict[str, tuple[int, ...]]:
    long: dict[str, set[int]] = {}
    for prefix in groups:
        if len(prefix) >= STEM_DIGITS:
            long.setdefault(prefix[:STEM_DIGITS], set()).add(len(prefix))
    stems = set(long) | {
        prefix + "".join(tail) for prefix in groups if len(prefix) < STEM_DIGITS for tail in _tails(prefix)
    }
    lengths: dict[str, tuple[int, ...]] = {}
    for stem in stems:
        short = {n for n in range(1, STEM_DIGITS) if stem[:n] in groups}
        lengths[stem] = tuple(sorted(long.get(stem, set()) | short, reverse=True))
    return lengths


def _tails(prefix: str) -> list[str]:
    """Every way to complete a short prefix to STEM_DIGITS digits."""
    tails = [""]
    for _ in range(STEM_DIGITS - len(prefix)):
        tails = [t + d for t in tails for d in "0123456789"]
    return tails


def _offset(zone: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, zone).utcoffset()
    return 0 if offset is None else offset // timedelta(seconds=1)
