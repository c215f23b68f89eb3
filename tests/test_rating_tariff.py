"""Tariffs as written: rate entries and the tariff's defaults, tariff names, derived tariffs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.rating.cost import Pricing, cost_micros
from tollway.rating.rates import RateRow, WeeklyWindow
from tollway.rating.tariff import (
    MULTIPLIER_MAX,
    PRICE_MICROS_MAX,
    TARIFF_NAME_LENGTH_MAX,
    TIME_SECONDS_MAX,
    Defaults,
    Derivation,
    RateEntry,
    Tariff,
    derive,
    derive_in_order,
    tariff_name,
)

SIX_CENTS = 60_000  # 0.060000 per minute
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
FRIDAY = datetime(2026, 11, 20, tzinfo=UTC)


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """The block is refused for this very reason."""
    with pytest.raises(Refusal) as refusal:
        yield
    assert refusal.value.reason == reason


# Rate entries: what a rate sheet's row may say.

UK = RateEntry("44", "United Kingdom", SIX_CENTS)


def uk_with(**changes: Any) -> RateEntry:
    return replace(UK, **changes)


@pytest.mark.parametrize("prefix", ["", "+44", "0044x", "44 7", "4a", "-1", "٤٤", "²", "1" * 21])
def test_a_prefix_is_one_to_twenty_ascii_digits(prefix: str) -> None:
    with refused("prefix_invalid"):
        RateEntry(prefix, "somewhere", SIX_CENTS)


def test_the_shortest_and_the_longest_prefixes_are_accepted() -> None:
    assert RateEntry("1", "NANP", SIX_CENTS).prefix == "1"
    assert RateEntry("9" * 20, "very specific", SIX_CENTS).prefix == "9" * 20


@pytest.mark.parametrize("field", ["price_micros", "connect_fee_micros"])
@pytest.mark.parametrize("micros", [-1, PRICE_MICROS_MAX + 1])
def test_a_negative_price_or_one_above_a_million_units_a_minute_is_refused(field: str, micros: int) -> None:
    with refused("price_invalid"):
        uk_with(**{field: micros})


def test_a_free_destination_and_a_price_of_a_million_units_a_minute_are_accepted() -> None:
    assert RateEntry("800", "toll free", 0).price_micros == 0
    entry = RateEntry("44", "United Kingdom", PRICE_MICROS_MAX, connect_fee_micros=PRICE_MICROS_MAX)
    assert entry.connect_fee_micros == 10**12


@pytest.mark.parametrize("field", ["minimal_time", "grace_period", "free_seconds"])
@pytest.mark.parametrize("seconds", [-1, TIME_SECONDS_MAX + 1])
def test_times_run_from_zero_to_one_day(field: str, seconds: int) -> None:
    with refused("seconds_invalid"):
        uk_with(**{field: seconds})
    assert getattr(uk_with(**{field: 86_400}), field) == 86_400
    assert getattr(uk_with(**{field: 0}), field) == 0


@pytest.mark.parametrize("resolution", [0, -6, TIME_SECONDS_MAX + 1])
def test_a_resolution_runs_from_one_second_to_one_day(resolution: int) -> None:
    with refused("resolution_invalid"):
        RateEntry("44", "United Kingdom", SIX_CENTS, resolution=resolution)
    assert RateEntry("44", "United Kingdom", SIX_CENTS, resolution=1).resolution == 1
    assert RateEntry("44", "United Kingdom", SIX_CENTS, resolution=86_400).resolution == 86_400


def test_validity_must_end_after_it_starts() -> None:
    with refused("validity_invalid"):
        RateEntry("44", "United Kingdom", SIX_CENTS, valid_from=FRIDAY, valid_to=MONDAY)
    with refused("validity_invalid"):
        RateEntry("44", "United Kingdom", SIX_CENTS, valid_from=MONDAY, valid_to=MONDAY)  # an empty span


def test_validity_may_be_open_at_either_end_or_last_one_second() -> None:
    assert RateEntry("44", "United Kingdom", SIX_CENTS, valid_from=MONDAY).valid_to is None
    assert RateEntry("44", "United Kingdom", SIX_CENTS, valid_to=MONDAY).valid_from is None
    one_second = datetime(2026, 11, 16, 0, 0, 1, tzinfo=UTC)
    assert RateEntry("44", "United Kingdom", SIX_CENTS, valid_from=MONDAY, valid_to=one_second).valid_to == one_second


def test_a_tariffs_defaults_are_checked_like_a_rows_times() -> None:
    with refused("resolution_invalid"):
        Defaults(resolution=0)
    with refused("seconds_invalid"):
        Defaults(minimal_time=-1)
    with refused("seconds_invalid"):
        Defaults(grace_period=TIME_SECONDS_MAX + 1)
    assert Defaults() == Defaults(minimal_time=0, resolution=1, grace_period=0)


# Resolving an entry against its tariff's defaults.

DEFAULTS = Defaults(minimal_time=30, resolution=6, grace_period=5)


def test_times_left_out_take_the_tariffs_defaults() -> None:
    entry = RateEntry("44", "United Kingdom", SIX_CENTS, connect_fee_micros=100_000, free_seconds=10)
    assert entry.resolve(DEFAULTS) == RateRow(
        "44",
        "United Kingdom",
        Pricing(SIX_CENTS, connect_fee_micros=100_000, minimal_time=30, resolution=6, grace_period=5, free_seconds=10),
    )


def test_times_written_in_the_row_are_kept_even_zero_and_one() -> None:
    entry = RateEntry("44", "United Kingdom", SIX_CENTS, minimal_time=0, resolution=1, grace_period=0)
    assert entry.resolve(DEFAULTS).pricing == Pricing(SIX_CENTS, minimal_time=0, resolution=1, grace_period=0)


def test_each_time_left_out_is_defaulted_on_its_own() -> None:
    entry = RateEntry("44", "United Kingdom", SIX_CENTS, resolution=60)
    pricing = entry.resolve(DEFAULTS).pricing
    assert (pricing.minimal_time, pricing.resolution, pricing.grace_period) == (30, 60, 5)


def test_changing_a_default_changes_every_row_that_follows_it() -> None:
    entry = RateEntry("44", "United Kingdom", SIX_CENTS)
    # 31 s: minimal 30, resolution 6 -> 36 s -> 0.036; then resolution 60 -> 60 s -> 0.06.
    assert cost_micros(entry.resolve(DEFAULTS).pricing, 31) == 36_000
    assert cost_micros(entry.resolve(Defaults(minimal_time=30, resolution=60)).pricing, 31) == 60_000


def test_resolving_keeps_the_window_the_validity_and_the_description() -> None:
    evenings = WeeklyWindow(0, 4, time(18), time(8))
    entry = RateEntry("33", "France off-peak", 30_000, window=evenings, valid_from=MONDAY, valid_to=FRIDAY)
    row = entry.resolve(Defaults())
    assert (row.prefix, row.description, row.window, row.valid_from, row.valid_to) == (
        "33",
        "France off-peak",
        evenings,
        MONDAY,
        FRIDAY,
    )


# Tariff names.


def test_a_tariff_is_known_by_its_owners_login_a_colon_and_its_name() -> None:
    assert tariff_name("acme", "Gold 2026") == "acme:Gold 2026"
    tariff = Tariff(1, 7, "acme:Gold 2026", "EUR", "Europe/Paris", Defaults())
    assert tariff.short_name == "Gold 2026"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * (TARIFF_NAME_LENGTH_MAX + 1),
        "gold:silver",
        "gold/silver",
        "tab\there",
        "line\nbreak",
        " Gold",
        "Gold ",
        "\u00a0x",
    ],
)
def test_a_tariff_name_is_1_to_60_printable_characters_without_a_colon_a_slash_or_outer_spaces(name: str) -> None:
    with refused("tariff_name_invalid"):
        tariff_name("acme", name)


def test_a_tariff_name_of_sixty_characters_or_with_inner_spaces_and_accents_is_accepted() -> None:
    assert tariff_name("acme", "x" * 60) == "acme:" + "x" * 60
    assert tariff_name("acme", "Été — nuit & week-end") == "acme:Été — nuit & week-end"


# Derived tariffs: price' = ceil(price x multiplier) + addition; connect_fee' = ceil(connect_fee x multiplier).


def base_row(prefix: str = "44", price: int = 13_000, connect_fee: int = 50_000, **terms: int) -> RateRow:
    return RateRow(prefix, "United Kingdom", Pricing(price, connect_fee_micros=connect_fee, **terms))


def test_a_derived_price_worked_by_hand() -> None:
    derivation = Derivation(Decimal("1.15"), addition_micros=2_000)
    derived = derivation.apply(base_row(price=13_000, connect_fee=50_000))
    # 0.013 x 1.15 = 0.01495 -> 14 950 micros, + 0.002 = 16 950; the fee: 0.05 x 1.15 = 0.0575, no addition.
    assert derived.pricing == Pricing(16_950, connect_fee_micros=57_500)
    # And a 7 s call at it: 57 500 + ceil(16 950 x 7 / 60 = 1 977.5) = 57 500 + 1 978.
    assert cost_micros(derived.pricing, 7) == 59_478


def test_a_derived_price_is_rounded_up_to_a_whole_micro_unit() -> None:
    derived = Derivation(Decimal("1.5")).apply(base_row(price=1_001, connect_fee=333))
    assert derived.pricing.price_micros == 1_502  # 1 501.5 -> 1 502
    assert derived.pricing.connect_fee_micros == 500  # 499.5 -> 500
    assert Derivation(Decimal("0.333333")).apply(base_row(price=10)).pricing.price_micros == 4  # 3.33333 -> 4
    assert Derivation(Decimal("1.5")).apply(base_row(price=1_000)).pricing.price_micros == 1_500  # exact: as is


def test_the_addition_is_per_minute_and_never_touches_the_connect_fee() -> None:
    derived = Derivation(Decimal(1), addition_micros=5_000).apply(base_row(price=13_000, connect_fee=50_000))
    assert (derived.pricing.price_micros, derived.pricing.connect_fee_micros) == (18_000, 50_000)


def test_multiplier_one_and_no_addition_leave_the_row_unchanged() -> None:
    row = base_row(minimal_time=30, resolution=6)
    assert Derivation().apply(row) == row


def test_multiplier_zero_prices_at_the_addition_alone_and_drops_the_connect_fee() -> None:
    derived = Derivation(Decimal(0), addition_micros=7_000).apply(base_row(price=13_000, connect_fee=50_000))
    assert derived.pricing == Pricing(7_000, connect_fee_micros=0)


def test_a_derived_tariff_keeps_the_bases_billing_terms() -> None:
    evenings = WeeklyWindow(0, 4, time(18), time(8))
    row = RateRow(
        "33",
        "France off-peak",
        Pricing(30_000, connect_fee_micros=10_000, minimal_time=30, resolution=6, grace_period=5, free_seconds=12),
        evenings,
        MONDAY,
        FRIDAY,
    )
    [derived] = derive([row], Derivation(Decimal(2), addition_micros=1_000), [])
    assert derived == RateRow(
        "33",
        "France off-peak",
        Pricing(61_000, connect_fee_micros=20_000, minimal_time=30, resolution=6, grace_period=5, free_seconds=12),
        evenings,
        MONDAY,
        FRIDAY,
    )


def test_an_override_replaces_every_row_of_its_prefix_and_only_those() -> None:
    peak = RateRow("33", "France peak", Pricing(90_000), WeeklyWindow(0, 4, time(8), time(20)))
    off_peak = RateRow("33", "France off-peak", Pricing(30_000), WeeklyWindow(0, 4, time(20), time(8)))
    mobile = RateRow("336", "France mobile", Pricing(100_000))
    uk = RateRow("44", "United Kingdom", Pricing(20_000))
    override = RateRow("33", "France flat", Pricing(45_000))
    rows = list(derive([peak, off_peak, mobile, uk], Derivation(Decimal("1.1")), [override]))
    # "33" is ours alone, any time; "336" is a prefix of its own and still follows the base (x 1.1).
    assert rows == [
        override,
        RateRow("336", "France mobile", Pricing(110_000)),
        RateRow("44", "United Kingdom", Pricing(22_000)),
    ]


def test_an_override_is_taken_as_written_not_multiplied() -> None:
    override = RateRow("44", "UK special", Pricing(1_000, connect_fee_micros=1_000))
    assert list(derive([base_row()], Derivation(Decimal(3), addition_micros=500), [override])) == [override]


def test_a_derived_tariff_in_prefix_order_overrides_every_row_of_a_prefix_and_reprices_the_rest() -> None:
    peak, weekend = WeeklyWindow(0, 4), WeeklyWindow(5, 6)
    base = [
        base_row("1", price=10_000),
        replace(base_row("44", price=20_000), window=peak),
        replace(base_row("44", price=12_000), window=weekend),
        base_row("49", price=16_000),
    ]
    own = [base_row("44", price=1_000, connect_fee=0), base_row("45", price=2_000, connect_fee=0)]
    rows = list(derive_in_order(base, Derivation(Decimal(2), addition_micros=1), own))
    assert [(row.prefix, row.pricing.price_micros) for row in rows] == [
        ("1", 20_001),  # 0.01 x 2 + 0.000001
        ("44", 1_000),  # its own row replaces both of the base's
        ("45", 2_000),
        ("49", 32_001),
    ]
    assert sorted(rows, key=lambda row: row.prefix) == sorted(
        derive(base, Derivation(Decimal(2), addition_micros=1), own), key=lambda row: row.prefix
    )


def test_a_derived_tariff_follows_its_base() -> None:
    derivation = Derivation(Decimal(2))
    assert [r.pricing.price_micros for r in derive([base_row(price=10_000)], derivation, [])] == [20_000]
    assert [r.pricing.price_micros for r in derive([base_row(price=12_000)], derivation, [])] == [24_000]


def test_a_discount_larger_than_a_price_makes_that_destination_free_and_never_breaks_the_tariff() -> None:
    derivation = Derivation(Decimal(1), addition_micros=-2_000)
    assert derivation.apply(base_row(price=13_000)).pricing.price_micros == 11_000
    assert derivation.apply(base_row(price=2_000)).pricing.price_micros == 0
    assert derivation.apply(base_row(prefix="447", price=1_999)).pricing.price_micros == 0
    # The base gains a free 800 row after the discount was set: the derived tariff still rates.
    derived = list(derive([base_row(price=13_000), base_row(prefix="800", price=0)], derivation, []))
    assert [r.pricing.price_micros for r in derived] == [11_000, 0]


@pytest.mark.parametrize("multiplier", ["0", "0.000001", "1", "1.15", str(MULTIPLIER_MAX)])
def test_multipliers_from_zero_to_a_thousand_are_accepted(multiplier: str) -> None:
    assert Derivation(Decimal(multiplier)).multiplier == Decimal(multiplier)


@pytest.mark.parametrize("multiplier", ["-0.01", "1000.000001", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_negative_huge_or_non_finite_multiplier_is_refused(multiplier: str) -> None:
    with refused("multiplier_invalid"):
        Derivation(Decimal(multiplier))


def test_the_addition_is_bounded_like_a_price_in_both_directions() -> None:
    assert Derivation(addition_micros=PRICE_MICROS_MAX).addition_micros == PRICE_MICROS_MAX
    assert Derivation(addition_micros=-PRICE_MICROS_MAX).addition_micros == -PRICE_MICROS_MAX
    with refused("price_invalid"):
        Derivation(addition_micros=PRICE_MICROS_MAX + 1)
    with refused("price_invalid"):
        Derivation(addition_micros=-PRICE_MICROS_MAX - 1)


@given(
    price=st.integers(0, PRICE_MICROS_MAX),
    connect_fee=st.integers(0, 10_000_000),
    multiplier=st.decimals(min_value=0, max_value=MULTIPLIER_MAX, places=6, allow_nan=False, allow_infinity=False),
    addition=st.integers(-1_000_000, 1_000_000),
)
@settings(max_examples=500)
def test_a_derived_price_is_the_exact_product_plus_the_addition_rounded_up_by_less_than_a_micro(
    price: int, connect_fee: int, multiplier: Decimal, addition: int
) -> None:
    exact_price = price * Fraction(multiplier) + addition
    exact_fee = connect_fee * Fraction(multiplier)
    derivation = Derivation(multiplier, addition_micros=addition)
    row = base_row(price=price, connect_fee=connect_fee)
    pricing = derivation.apply(row).pricing
    if exact_price <= 0:  # a discount larger than the price: free
        assert pricing.price_micros == 0
    else:
        assert exact_price <= pricing.price_micros < exact_price + 1
    assert exact_fee <= pricing.connect_fee_micros < exact_fee + 1


def test_validity_dates_without_a_time_zone_are_refused() -> None:
    with refused("validity_invalid"):
        RateEntry("44", "UK", 10_000, valid_from=datetime(2026, 1, 1))


def test_a_description_fits_its_column_and_has_no_nul() -> None:
    assert RateEntry("44", "x" * 200, 1).description == "x" * 200
    for description in ("x" * 201, "UK\x00", "UK\ud800"):
        with refused("description_invalid"):
            RateEntry("44", description, 1)


@given(st.integers(0, 10**15))
def test_the_batch_raters_amount_text_is_the_decimal_amount(micros: int) -> None:
    from tollway.money import to_decimal
    from tollway.rating.batch import _amount_text

    assert _amount_text(micros) == str(to_decimal(micros))
