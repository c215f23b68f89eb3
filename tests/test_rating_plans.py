"""Plans: their checks, what they cover, rollover, and how a call splits between the plan and money."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.rating.cost import Pricing, billed_seconds, cost_micros
from tollway.rating.plans import (
    INCLUDED_SECONDS_MAX,
    PLAN_PREFIXES_MAX,
    Period,
    Plan,
    affordable_with_plan,
    split_cost,
)

SIX_CENTS = 60_000  # 0.060000 per minute
TEN_CENTS = 100_000


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """The block is refused for this very reason."""
    with pytest.raises(Refusal) as refusal:
        yield
    assert refusal.value.reason == reason


def plan(included_seconds: int = 6_000, prefixes: tuple[str, ...] = ("44",), *, rollover: bool = False) -> Plan:
    """UK 100 minutes a month for 5.00 GBP, unless told otherwise."""
    return Plan("UK 100", "GBP", 5_000_000, Period.MONTH, included_seconds, prefixes, rollover)


# Checks.


def test_a_plans_fee_is_never_negative_but_may_be_zero() -> None:
    with refused("price_invalid"):
        Plan("UK 100", "GBP", -1, Period.MONTH, 6_000)
    assert Plan("UK 100", "GBP", 0, Period.MONTH, 6_000).fee_micros == 0


@pytest.mark.parametrize("seconds", [-1, INCLUDED_SECONDS_MAX + 1])
def test_included_seconds_run_from_zero_to_ten_million(seconds: int) -> None:
    with refused("seconds_invalid"):
        plan(seconds)


def test_zero_and_ten_million_included_seconds_are_accepted() -> None:
    assert plan(0).included_seconds == 0
    assert plan(10_000_000).included_seconds == 10_000_000


def test_a_plan_covers_at_most_a_thousand_prefixes() -> None:
    thousand = tuple(str(1_000 + i) for i in range(PLAN_PREFIXES_MAX))
    assert len(plan(prefixes=thousand).prefixes) == 1_000
    with refused("plan_prefixes_invalid"):
        plan(prefixes=(*thousand, "9"))


@pytest.mark.parametrize("prefix", ["", "+44", "44 7", "x", "1" * 21])
def test_a_plans_prefixes_are_checked_like_a_tariffs(prefix: str) -> None:
    with refused("prefix_invalid"):
        plan(prefixes=("33", prefix))


def test_periods_are_day_week_and_month() -> None:
    assert [p.value for p in Period] == ["day", "week", "month"]
    assert Period("week") is Period.WEEK


# What a plan covers.


def test_a_plan_without_prefixes_covers_every_destination() -> None:
    everything = plan(prefixes=())
    assert all(everything.covers(n) for n in ["1", "447700900123", "33123456789", "881012345"])


def test_a_plan_covers_the_numbers_that_start_with_one_of_its_prefixes() -> None:
    europe = plan(prefixes=("44", "33"))
    assert europe.covers("447700900123")
    assert europe.covers("33123456789")
    assert europe.covers("44")
    assert not europe.covers("4930123456")
    assert not europe.covers("4")  # shorter than every prefix
    assert not europe.covers("144")  # the prefix must be at the start


# What a new period starts with.


@pytest.mark.parametrize("left", [0, 1_000, 6_000, 50_000])
def test_without_rollover_every_period_starts_with_the_included_seconds(left: int) -> None:
    assert plan(6_000).allowance_after(left) == 6_000


def test_with_rollover_what_is_left_carries_over() -> None:
    assert plan(6_000, rollover=True).allowance_after(0) == 6_000
    assert plan(6_000, rollover=True).allowance_after(1_000) == 7_000


def test_with_rollover_at_most_one_periods_worth_carries_over() -> None:
    assert plan(6_000, rollover=True).allowance_after(6_000) == 12_000
    assert plan(6_000, rollover=True).allowance_after(10_000) == 12_000  # 6 000 + min(10 000, 6 000)
    assert plan(6_000, rollover=True).allowance_after(12_000) == 12_000  # never grows past two periods


# Splitting a call between the plan and money: (seconds from the plan, money).


def test_a_call_fully_covered_costs_nothing_not_even_the_connect_fee() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=TEN_CENTS, resolution=60)
    # 61 s -> billed 120 s: all of it from the plan.
    assert split_cost(pricing, 61, 120) == (120, 0)
    assert split_cost(pricing, 61, 5_000) == (120, 0)  # takes what the call needs, not more


def test_a_call_partly_covered_worked_by_hand() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=TEN_CENTS, resolution=60)
    # 150 s -> billed 180 s; the plan has 100 left: 100 from the plan, 80 paid for,
    # 0.10 + 0.06 x 80 / 60 = 0.10 + 0.08 = 0.18. Without the plan: 0.10 + 0.18 = 0.28.
    assert split_cost(pricing, 150, 100) == (100, 180_000)
    assert cost_micros(pricing, 150) == 280_000


def test_the_money_part_of_a_partly_covered_call_is_rounded_up_to_a_micro() -> None:
    pricing = Pricing(13_000, connect_fee_micros=TEN_CENTS, resolution=60)
    # billed 180, 100 from the plan, 80 paid for: 0.10 + ceil(13 000 x 80 / 60 = 17 333.3) micros.
    assert split_cost(pricing, 150, 100) == (100, 117_334)


def test_the_minimal_time_counts_in_the_seconds_taken_from_the_plan() -> None:
    pricing = Pricing(SIX_CENTS, minimal_time=60)
    # 10 s -> billed 60 s: 45 from the plan, 15 s paid for = 0.015.
    assert split_cost(pricing, 10, 45) == (45, 15_000)
    assert split_cost(pricing, 10, 60) == (60, 0)


def test_a_call_within_the_grace_period_takes_nothing_from_the_plan() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=TEN_CENTS, grace_period=5)
    assert split_cost(pricing, 5, 6_000) == (0, 0)
    assert split_cost(pricing, 0, 6_000) == (0, 0)
    assert split_cost(pricing, 6, 6_000) == (6, 0)  # one second past the grace period: all six are billed


def test_free_seconds_apply_to_the_money_part_only() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=50_000, resolution=60, free_seconds=30)
    # 170 s -> billed 180; 60 from the plan (not 60 - 30), 120 left, of which 30 free:
    # 0.05 + 0.06 x 90 / 60 = 0.05 + 0.09.
    assert split_cost(pricing, 170, 60) == (60, 140_000)
    # 160 from the plan leaves 20 s, all free: only the connect fee, as the call is not entirely covered.
    assert split_cost(pricing, 170, 160) == (160, 50_000)
    # Entirely covered: the free seconds change nothing.
    assert split_cost(pricing, 170, 180) == (180, 0)


def test_with_nothing_left_in_the_plan_a_call_costs_what_it_costs_without_one() -> None:
    pricing = Pricing(SIX_CENTS, connect_fee_micros=TEN_CENTS, minimal_time=30, resolution=6, free_seconds=6)
    assert split_cost(pricing, 31, 0) == (0, cost_micros(pricing, 31))
    assert split_cost(pricing, 31, -10) == (0, cost_micros(pricing, 31))  # a negative allowance is none


pricings = st.builds(
    Pricing,
    price_micros=st.integers(0, 10_000_000),
    connect_fee_micros=st.integers(0, 1_000_000),
    minimal_time=st.integers(0, 120),
    resolution=st.integers(1, 120),
    grace_period=st.integers(0, 30),
    free_seconds=st.integers(0, 300),
)


def by_the_second(pricing: Pricing) -> Pricing:
    """The same price, fee and free seconds, with no minimal time, resolution or grace period."""
    return Pricing(pricing.price_micros, pricing.connect_fee_micros, free_seconds=pricing.free_seconds)


@given(pricings, st.integers(0, 20_000), st.integers(0, 20_000))
@settings(max_examples=500)
def test_plan_seconds_and_the_seconds_paid_for_make_up_the_billed_seconds(
    pricing: Pricing, duration: int, allowance: int
) -> None:
    billed = billed_seconds(pricing, duration)
    from_plan, money = split_cost(pricing, duration, allowance)
    paid_for = billed - from_plan
    assert from_plan == min(allowance, billed)
    assert 0 <= paid_for <= billed
    # The money buys exactly the seconds paid for, by the second, with the fee and free seconds.
    assert money == cost_micros(by_the_second(pricing), paid_for)


@given(pricings, st.integers(0, 20_000))
@settings(max_examples=500)
def test_with_an_allowance_of_zero_the_money_is_the_cost_of_the_call(pricing: Pricing, duration: int) -> None:
    assert split_cost(pricing, duration, 0) == (0, cost_micros(pricing, duration))


@given(pricings, st.integers(0, 20_000), st.integers(0, 20_000), st.integers(0, 20_000))
@settings(max_examples=500)
def test_the_more_seconds_are_left_in_the_plan_the_less_money_a_call_takes(
    pricing: Pricing, duration: int, a: int, b: int
) -> None:
    less, more = sorted((a, b))
    plan_less, money_less = split_cost(pricing, duration, less)
    plan_more, money_more = split_cost(pricing, duration, more)
    assert money_more <= money_less
    assert plan_more >= plan_less


@given(
    st.builds(
        Pricing,
        price_micros=st.integers(0, 2_000_000),
        connect_fee_micros=st.integers(0, 200_000),
        minimal_time=st.integers(0, 90),
        resolution=st.integers(1, 60),
        grace_period=st.integers(0, 10),
        free_seconds=st.integers(0, 60),
    ),
    st.integers(0, 500_000),
    st.integers(0, 400),
)
@settings(max_examples=400)
def test_how_long_a_call_may_last_with_a_plan_agrees_with_a_search_second_by_second(
    pricing: Pricing, amount: int, allowance: int
) -> None:
    cap = 900
    expected = max(d for d in range(cap + 1) if split_cost(pricing, d, allowance)[1] <= amount)
    assert affordable_with_plan(pricing, amount, allowance, cap=cap) == expected


def test_a_plan_with_minutes_left_lets_a_penniless_client_talk_that_long() -> None:
    # 0.06 a minute, 0.10 to connect, 60 s steps; 150 plan seconds cover two whole minutes.
    pricing = Pricing(60_000, connect_fee_micros=100_000, resolution=60)
    assert affordable_with_plan(pricing, 0, 150, cap=3_600) == 120
    # With 0.16: 180 s bills 180, the plan pays 150, 30 s cost 0.03 + 0.10 = 0.13; 181 s bills 240 and
    # 90 paid seconds cost 0.09 + 0.10 = 0.19, too much.
    assert affordable_with_plan(pricing, 160_000, 150, cap=3_600) == 180
