"""Rate selection: longest prefix, weekly windows (wrapping midnight and the week), validity dates."""

from __future__ import annotations

from datetime import UTC, datetime, time

from tollway.rating.cost import Pricing
from tollway.rating.rates import RateRow, RateTable, WeeklyWindow, overlapping_pairs

P = Pricing(60_000)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of Monday 2026-11-16, UTC."""
    return datetime(2026, 11, 16 + day, hour, minute, tzinfo=UTC)


def test_the_longest_matching_prefix_wins() -> None:
    table = RateTable(
        [RateRow("44", "United Kingdom", P), RateRow("447", "UK mobile", P), RateRow("4420", "London", P)],
        time_zone="UTC",
    )
    assert table.select("447700900123", at(0, 12)).description == "UK mobile"  # type: ignore[union-attr]
    assert table.select("442079460000", at(0, 12)).description == "London"  # type: ignore[union-attr]
    assert table.select("441632960000", at(0, 12)).description == "United Kingdom"  # type: ignore[union-attr]
    assert table.select("33123456789", at(0, 12)) is None  # no_rate


def test_a_night_window_wraps_midnight_and_its_day_is_the_calls_own() -> None:
    night = WeeklyWindow(from_day=0, to_day=4, from_time=time(22), to_time=time(6))
    assert night.contains(at(4, 23))  # Friday 23:00
    assert night.contains(at(4, 1))  # Friday 01:00
    assert not night.contains(at(5, 1))  # Saturday 01:00: not a weekday
    assert not night.contains(at(2, 6))  # 06:00 is the (exclusive) end
    assert night.contains(at(2, 5, 59))


def test_a_weekend_window_wraps_past_sunday() -> None:
    weekend = WeeklyWindow(from_day=5, to_day=0)  # Saturday to Monday
    assert [weekend.contains(at(day, 12)) for day in range(7)] == [True, False, False, False, False, True, True]


def test_peak_and_off_peak_rows_for_one_prefix_in_the_tariffs_time_zone() -> None:
    peak = RateRow("33", "France peak", Pricing(90_000), WeeklyWindow(0, 4, time(8), time(20)))
    off_peak_evening = RateRow("33", "France off-peak", Pricing(30_000), WeeklyWindow(0, 4, time(20), time(8)))
    weekend = RateRow("33", "France weekend", Pricing(20_000), WeeklyWindow(5, 6))
    table = RateTable([peak, off_peak_evening, weekend], time_zone="Europe/Paris")
    # 07:30 UTC on a Monday in November is 08:30 in Paris: peak.
    assert table.select("33612345678", at(0, 7, 30)) is peak
    # 06:30 UTC is 07:30 in Paris: still off-peak.
    assert table.select("33612345678", at(0, 6, 30)) is off_peak_evening
    assert table.select("33612345678", at(6, 12)) is weekend


def test_validity_starts_inclusive_and_ends_exclusive() -> None:
    change = at(3, 0)
    old = RateRow("49", "Germany until Thursday", Pricing(50_000), valid_to=change)
    new = RateRow("49", "Germany from Thursday", Pricing(40_000), valid_from=change)
    table = RateTable([old, new], time_zone="UTC")
    assert table.select("4930123456", at(2, 23, 59)) is old
    assert table.select("4930123456", change) is new
    assert overlapping_pairs([old, new]) == []


def test_rows_that_could_price_one_instant_for_one_prefix_overlap() -> None:
    day = RateRow("1", "day", P, WeeklyWindow(0, 6, time(8), time(20)))
    evening = RateRow("1", "evening", P, WeeklyWindow(0, 6, time(19), time(23)))
    night = RateRow("1", "night", P, WeeklyWindow(0, 6, time(20), time(8)))
    other_prefix = RateRow("12", "other", P, WeeklyWindow(0, 6, time(8), time(20)))
    assert overlapping_pairs([day, night, other_prefix]) == []
    assert overlapping_pairs([day, evening, night]) == [(day, evening), (evening, night)]


def test_validity_periods_that_meet_do_not_overlap_but_crossing_ones_do() -> None:
    first = RateRow("7", "a", P, valid_from=at(0, 0), valid_to=at(2, 0))
    crossing = RateRow("7", "b", P, valid_from=at(1, 0))
    meeting = RateRow("7", "c", P, valid_from=at(2, 0))
    assert overlapping_pairs([first, meeting]) == []
    assert overlapping_pairs([first, crossing]) == [(first, crossing)]
