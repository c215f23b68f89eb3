"""Rate selection: longest prefix, weekly windows (wrapping midnight and the week), validity dates."""

from __future__ import annotations

from datetime import UTC, datetime, time

from tollway.rating.cost import Pricing
from tollway.rating.rates import Rate, RateRow, RateTable, WeeklyWindow, overlapping_pairs

P = Pricing(60_000)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of Monday 2026-11-16, UTC."""
    return datetime(2026, 11, 16 + day, hour, minute, tzinfo=UTC)


def test_the_longest_matching_prefix_wins() -> None:
    table = RateTable(
        [RateRow("44", "United Kingdom", P), RateRow("447", "UK mobile", P), RateRow("4420", "London", P)],
        time_zone="UTC",
    )
    assert table.select("447700900123", at(0, 12)) == ("447", Rate("UK mobile", P))
    assert table.select("442079460000", at(0, 12)) == ("4420", Rate("London", P))
    assert table.select("441632960000", at(0, 12)) == ("44", Rate("United Kingdom", P))
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
    assert table.select("33612345678", at(0, 7, 30)) == (peak.prefix, peak.rate)
    # 06:30 UTC is 07:30 in Paris: still off-peak.
    assert table.select("33612345678", at(0, 6, 30)) == (off_peak_evening.prefix, off_peak_evening.rate)
    assert table.select("33612345678", at(6, 12)) == (weekend.prefix, weekend.rate)


def test_validity_starts_inclusive_and_ends_exclusive() -> None:
    change = at(3, 0)
    old = RateRow("49", "Germany until Thursday", Pricing(50_000), valid_to=change)
    new = RateRow("49", "Germany from Thursday", Pricing(40_000), valid_from=change)
    table = RateTable([old, new], time_zone="UTC")
    assert table.select("4930123456", at(2, 23, 59)) == (old.prefix, old.rate)
    assert table.select("4930123456", change) == (new.prefix, new.rate)
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


def test_a_prefix_with_no_row_valid_now_falls_back_to_a_shorter_prefix() -> None:
    promotion = RateRow("4477", "UK mobile promotion", P, valid_to=at(1, 0))
    table = RateTable([RateRow("44", "United Kingdom", P), promotion], time_zone="UTC")
    assert table.select("447712345678", at(0, 12)) == ("4477", promotion.rate)
    assert table.select("447712345678", at(1, 0)) == ("44", Rate("United Kingdom", P))


def test_the_longest_prefix_is_found_among_siblings_that_sort_between() -> None:
    # "4478" sorts between "447" and "4479", and is no prefix of "4479123": the walk goes up to "447".
    table = RateTable([RateRow(p, p, P) for p in ("4", "447", "44712", "4478", "4479999")], time_zone="UTC")
    assert table.select("4479123", at(0, 0)) == ("447", Rate("447", P))
    assert table.select("4471299", at(0, 0)) == ("44712", Rate("44712", P))
    assert table.select("45", at(0, 0)) == ("4", Rate("4", P))
    assert table.select("3", at(0, 0)) is None


def test_many_prefixes_priced_alike_share_one_rate() -> None:
    table = RateTable([RateRow(str(n), "Somewhere", P) for n in range(1000, 2000)], time_zone="UTC")
    first, second = table.select("1000", at(0, 0)), table.select("1999", at(0, 0))
    assert first is not None and second is not None and first[1] is second[1]


def test_a_window_is_read_in_the_tariffs_time_zone_across_a_change_of_offset() -> None:
    # Paris leaves summer time on Sunday 2026-10-25 at 01:00 UTC: 03:00 CEST becomes 02:00 CET.
    two_am = RateRow("33", "02:00-03:00", P, WeeklyWindow(0, 6, time(2), time(3)))
    table = RateTable([two_am], time_zone="Europe/Paris")
    utc = [datetime(2026, 10, 25, h, m, s, tzinfo=UTC) for h, m, s in [(0, 0, 0), (0, 59, 59), (1, 0, 0), (1, 59, 59)]]
    assert [table.select("331", instant) is not None for instant in utc] == [True, True, True, True]  # 02:xx twice
    assert table.select("331", datetime(2026, 10, 24, 23, 59, 59, tzinfo=UTC)) is None  # 01:59:59 CEST
    assert table.select("331", datetime(2026, 10, 25, 2, 0, tzinfo=UTC)) is None  # 03:00 CET
