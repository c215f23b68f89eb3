"""The cost of a call and its inverse: docs/design.md's worked examples, edge cases, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.rating.cost import Pricing, affordable_seconds, billed_seconds, cost_micros

SIX_CENTS = 60_000  # 0.060000 per minute


def test_minimal_time_30_resolution_6_a_31_second_call_bills_36_seconds() -> None:
    pricing = Pricing(SIX_CENTS, minimal_time=30, resolution=6)
    assert billed_seconds(pricing, 31) == 36
    assert cost_micros(pricing, 31) == 36_000  # 0.036000


def test_resolution_60_with_a_connect_fee_a_61_second_call_bills_two_minutes() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=100_000, resolution=60)
    assert billed_seconds(pricing, 61) == 120
    assert cost_micros(pricing, 61) == 220_000  # 0.10 + 2 x 0.06


def test_a_call_within_the_grace_period_is_free_and_the_next_second_is_not() -> None:
    pricing = Pricing(SIX_CENTS, grace_period=5, resolution=1)
    assert cost_micros(pricing, 5) == 0
    assert cost_micros(pricing, 6) == 6_000  # 0.006000


def test_a_fraction_of_a_micro_unit_is_rounded_up() -> None:
    pricing = Pricing(13_000, resolution=1)  # 0.013 per minute
    assert cost_micros(pricing, 7) == 1_517  # 0.0015166... -> 0.001517


def test_an_unanswered_call_costs_nothing_not_even_the_connect_fee() -> None:
    assert cost_micros(Pricing(SIX_CENTS, connect_fee_micros=100_000), 0) == 0


def test_free_seconds_larger_than_the_billed_time_leave_only_the_connect_fee() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=50_000, resolution=60, free_seconds=90)
    assert cost_micros(pricing, 45) == 50_000  # billed 60, charged max(0, 60 - 90) = 0
    assert cost_micros(pricing, 100) == 50_000 + 30_000  # billed 120, charged 30 s


def test_resolution_1_against_resolution_60() -> None:
    assert cost_micros(Pricing(SIX_CENTS, resolution=1), 61) == 61_000
    assert cost_micros(Pricing(SIX_CENTS, resolution=60), 61) == 120_000


def test_a_resolution_of_zero_or_a_negative_price_is_refused() -> None:
    with pytest.raises(Refusal, match="resolution"):
        Pricing(SIX_CENTS, resolution=0)
    with pytest.raises(Refusal, match="never negative"):
        Pricing(-1)


def test_how_long_one_dollar_lasts_at_six_cents_a_minute_in_six_second_steps() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=100_000, minimal_time=30, resolution=6)
    # 1.00 - 0.10 = 0.90 buys 15 minutes = 900 s exactly.
    assert affordable_seconds(pricing, 1_000_000, cap=10_000) == 900
    assert cost_micros(pricing, 900) == 1_000_000
    assert cost_micros(pricing, 901) > 1_000_000
    # Not even the connect fee: only calls within the grace period (none here).
    assert affordable_seconds(pricing, 99_999, cap=10_000) == 0
    # The fee and 29 s are affordable, but the minimal time of 30 s is not: nothing chargeable fits.
    assert affordable_seconds(pricing, 100_000 + 29_000, cap=10_000) == 0
    assert affordable_seconds(pricing, 100_000 + 30_000, cap=10_000) == 30


def test_a_free_destination_is_limited_only_by_the_cap() -> None:
    assert affordable_seconds(Pricing(0, connect_fee_micros=10_000), 10_000, cap=3_600) == 3_600
    assert affordable_seconds(Pricing(0, connect_fee_micros=10_000), 9_999, cap=3_600) == 0


pricings = st.builds(
    Pricing,
    price_micros=st.integers(0, 10_000_000),
    connect_fee_micros=st.integers(0, 1_000_000),
    minimal_time=st.integers(0, 120),
    resolution=st.integers(1, 120),
    grace_period=st.integers(0, 30),
    free_seconds=st.integers(0, 300),
)


@given(pricings, st.integers(0, 20_000), st.integers(0, 20_000))
@settings(max_examples=500)
def test_cost_never_decreases_with_duration(pricing: Pricing, a: int, b: int) -> None:
    shorter, longer = sorted((a, b))
    assert cost_micros(pricing, shorter) <= cost_micros(pricing, longer)


@given(pricings, st.integers(0, 100_000_000), st.integers(1, 100_000))
@settings(max_examples=1_000)
def test_the_inverse_is_exact(pricing: Pricing, amount: int, cap: int) -> None:
    d = affordable_seconds(pricing, amount, cap=cap)
    assert 0 <= d <= cap
    assert cost_micros(pricing, d) <= amount
    if d < cap:  # the next second is either unaffordable or, being free of charge here, proves d wrong
        assert cost_micros(pricing, d + 1) > amount


@given(pricings, st.integers(0, 2_000_000))
@settings(max_examples=300)
def test_the_inverse_agrees_with_a_search_second_by_second(pricing: Pricing, amount: int) -> None:
    cap = 2_000
    expected = max(d for d in range(cap + 1) if cost_micros(pricing, d) <= amount)
    assert affordable_seconds(pricing, amount, cap=cap) == expected
