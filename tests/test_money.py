"""Money at the edges: text and ``Decimal`` in, integer micro-units inside, never a float."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.money import AMOUNT_MICROS_MAX, check_currency, convert_micros, format_amount, to_decimal, to_micros


def refusal_reason(amount: object) -> str:
    with pytest.raises(Refusal) as refused:
        to_micros(amount)  # type: ignore[arg-type]
    return refused.value.reason


def test_twelve_fifty_is_twelve_and_a_half_million_micros() -> None:
    assert to_micros("12.50") == 12_500_000
    assert to_micros(Decimal("12.5")) == 12_500_000
    assert to_micros(12) == 12_000_000


def test_one_micro_unit_is_the_smallest_amount() -> None:
    assert to_micros("0.000001") == 1
    assert to_micros("-0.000001") == -1


def test_trailing_zeros_beyond_six_places_change_nothing() -> None:
    assert to_micros("7.25000000") == 7_250_000


def test_an_amount_with_a_seventh_decimal_is_refused() -> None:
    assert refusal_reason("0.0000001") == "amount_too_precise"
    assert refusal_reason("12.3456789") == "amount_too_precise"


def test_a_sub_micro_digit_far_behind_the_point_is_still_refused() -> None:
    # 30 significant digits: more than Decimal's default 28-digit arithmetic keeps.
    assert refusal_reason("12.5000000000000000000000000001") == "amount_too_precise"


def test_one_billion_units_is_the_largest_amount() -> None:
    assert to_micros("1000000000") == AMOUNT_MICROS_MAX
    assert to_micros("-1000000000") == -AMOUNT_MICROS_MAX
    assert refusal_reason("1000000000.000001") == "amount_too_large"
    assert refusal_reason("-1000000001") == "amount_too_large"


def test_an_absurd_exponent_is_refused_as_too_large_not_crashing() -> None:
    assert refusal_reason("1e999999") == "amount_too_large"


def test_a_float_is_refused_loudly() -> None:
    with pytest.raises(TypeError, match="never a float"):
        to_micros(12.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "abc", "12,50", "1e", "NaN", "Infinity", "-Infinity", "sNaN"])
def test_text_that_is_not_a_finite_number_is_refused(text: str) -> None:
    assert refusal_reason(text) == "amount_invalid"


def test_none_is_refused_loudly() -> None:
    with pytest.raises(TypeError):
        to_micros(None)  # type: ignore[arg-type]


def test_to_decimal_always_shows_six_places() -> None:
    assert to_decimal(12_500_000) == Decimal("12.500000")
    assert str(to_decimal(12_500_000)) == "12.500000"
    assert str(to_decimal(-1)) == "-0.000001"
    assert str(to_decimal(0)) == "0.000000"
    assert format_amount(2_500_000, "EUR") == "2.500000 EUR"


def test_conversion_rounds_half_to_even() -> None:
    # 5 micros at 0.5 is 2.5 → 2; 7 micros at 0.5 is 3.5 → 4; 3 at 0.5 is 1.5 → 2.
    assert convert_micros(5, Decimal("0.5")) == 2
    assert convert_micros(7, Decimal("0.5")) == 4
    assert convert_micros(3, Decimal("0.5")) == 2
    assert convert_micros(-5, Decimal("0.5")) == -2


def test_ten_dollars_at_0_92_is_nine_euros_twenty() -> None:
    assert convert_micros(10_000_000, Decimal("0.92")) == 9_200_000


def test_conversion_rounds_once_even_when_the_product_has_more_than_28_digits() -> None:
    # Exactly 499_998_998_998_499.499999999999999999: rounding to 28 digits first would give .5 and
    # then half-even would round up to ...500.
    assert convert_micros(999_999_999_999_001, Decimal("0.499998998998998999")) == 499_998_998_998_499


def test_currencies_are_iso_4217_codes() -> None:
    assert check_currency("EUR") == "EUR"
    with pytest.raises(Refusal) as refused:
        check_currency("usd")
    assert refused.value.reason == "currency_invalid"


@given(st.integers(min_value=-AMOUNT_MICROS_MAX, max_value=AMOUNT_MICROS_MAX))
def test_micros_survive_the_round_trip_through_decimal_and_text(micros: int) -> None:
    assert to_micros(to_decimal(micros)) == micros
    assert to_micros(str(to_decimal(micros))) == micros


@given(
    st.integers(min_value=-AMOUNT_MICROS_MAX, max_value=AMOUNT_MICROS_MAX),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("100000"), places=18, allow_nan=False),
)
def test_conversion_equals_exact_arithmetic_rounded_half_even(micros: int, rate: Decimal) -> None:
    assert convert_micros(micros, rate) == round(Fraction(micros) * Fraction(rate))


def test_a_bool_is_no_amount() -> None:
    with pytest.raises(TypeError, match="never a bool"):
        to_micros(True)  # type: ignore[arg-type]
