"""Rating one call through the ownership chain: client, L1, L2, L3, each on its own tariff."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.rating.chain import Allowance, Charge, Level, NoRate, rate_call
from tollway.rating.cost import Pricing, billed_seconds, cost_micros
from tollway.rating.plans import Period, Plan, split_cost
from tollway.rating.rates import RateRow, RateTable, WeeklyWindow, epoch_seconds

UK_MOBILE = "447700900123"
LONDON = "442079460000"
PARIS = "33123456789"
TOKYO = "81312345678"

# Client "carol" belongs to L1 "l1", which belongs to L2 "l2", which belongs to L3 "l3", which belongs to
# the provider. Each pays its owner at the tariff its owner made ("<owner>:<name>").

CLIENT = Level(
    "carol",
    "l1:Retail",
    "EUR",
    RateTable(
        [
            RateRow("44", "United Kingdom", Pricing(100_000)),
            RateRow("447", "UK mobile", Pricing(250_000, connect_fee_micros=50_000, minimal_time=30, resolution=6)),
            RateRow("33", "France", Pricing(80_000, resolution=60)),
        ],
        time_zone="UTC",
    ),
)
L1 = Level(
    "l1",
    "l2:Resellers",
    "EUR",
    RateTable(
        [
            RateRow("44", "United Kingdom", Pricing(60_000, resolution=60)),
            RateRow("4477", "UK mobile 77", Pricing(180_000, resolution=60)),
            RateRow("33", "France", Pricing(50_000, resolution=60)),
        ],
        time_zone="UTC",
    ),
)
# L2's tariff is in New York time, with peak, off-peak and weekend rows for UK mobiles, and no France.
PEAK = WeeklyWindow(0, 4, time(8), time(18))
OFF_PEAK = WeeklyWindow(0, 4, time(18), time(8))
WEEKEND = WeeklyWindow(5, 6)
L2 = Level(
    "l2",
    "l3:Wholesale",
    "USD",
    RateTable(
        [
            RateRow("44", "United Kingdom", Pricing(30_000)),
            RateRow("447", "UK mobile peak", Pricing(123_400, grace_period=3), PEAK),
            RateRow("447", "UK mobile off-peak", Pricing(61_700, grace_period=3), OFF_PEAK),
            RateRow("447", "UK mobile weekend", Pricing(40_000, grace_period=3), WEEKEND),
        ],
        time_zone="America/New_York",
    ),
)
L3 = Level(
    "l3",
    "provider:Base",
    "USD",
    RateTable(
        [
            RateRow(
                "4",
                "Zone 4",
                Pricing(50_000, connect_fee_micros=10_000, minimal_time=60, resolution=30, free_seconds=10),
            ),
            RateRow("3", "Zone 3", Pricing(40_000, resolution=60)),
        ],
        time_zone="UTC",
    ),
)
CHAIN = [CLIENT, L1, L2, L3]

# Monday 16 November 2026; New York is on EST (UTC-5).
MONDAY_0830_NEW_YORK = epoch_seconds(datetime(2026, 11, 16, 13, 30, tzinfo=UTC))
MONDAY_0730_NEW_YORK = epoch_seconds(datetime(2026, 11, 16, 12, 30, tzinfo=UTC))
SUNDAY_2200_NEW_YORK = epoch_seconds(datetime(2026, 11, 16, 3, 0, tzinfo=UTC))  # Monday 03:00 in UTC

# A 95 s call to a UK mobile, at the levels whose tariffs have no windows:
# carol: "447", minimal 30, resolution 6: 95 -> 96 s; 0.05 + 0.25 x 96 / 60 = 0.05 + 0.40.
CAROL_95 = Charge("carol", "l1:Retail", "EUR", "447", "UK mobile", 250_000, 96, 0, 450_000)
# l1: "4477", resolution 60: 95 -> 120 s; 0.18 x 2 = 0.36.
L1_95 = Charge("l1", "l2:Resellers", "EUR", "4477", "UK mobile 77", 180_000, 120, 0, 360_000)
# l3: "4", minimal 60, resolution 30: 95 -> 120 s, 10 free -> 110 charged;
# 0.01 + ceil(50 000 x 110 / 60 = 91 666.7) micros = 10 000 + 91 667.
L3_95 = Charge("l3", "provider:Base", "USD", "4", "Zone 4", 50_000, 120, 0, 101_667)


def test_a_call_is_charged_at_every_level_on_that_levels_own_tariff() -> None:
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 95)
    assert charges == [
        CAROL_95,
        L1_95,
        # l2: 13:30 UTC is 08:30 in New York, a Monday: peak. By the second: 95 s;
        # ceil(123 400 x 95 / 60 = 195 383.3) = 195 384.
        Charge(
            account="l2",
            tariff="l3:Wholesale",
            currency="USD",
            prefix="447",
            description="UK mobile peak",
            price_micros=123_400,
            billed_seconds=95,
            plan_seconds=0,
            amount_micros=195_384,
        ),
        L3_95,
    ]


def test_the_level_in_another_time_zone_is_priced_at_its_own_local_time() -> None:
    # 12:30 UTC is 07:30 in New York: off-peak; ceil(61 700 x 95 / 60 = 97 691.7) = 97 692.
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0730_NEW_YORK, 95)
    assert charges[2] == Charge("l2", "l3:Wholesale", "USD", "447", "UK mobile off-peak", 61_700, 95, 0, 97_692)
    assert [charges[0], charges[1], charges[3]] == [CAROL_95, L1_95, L3_95]  # their tariffs have no windows


def test_the_day_of_the_week_is_also_the_levels_own() -> None:
    # Monday 03:00 UTC is still Sunday 22:00 in New York: the weekend row, 40 000 x 95 / 60 = 63 333.3 -> 63 334.
    charges = rate_call(CHAIN, UK_MOBILE, SUNDAY_2200_NEW_YORK, 95)
    assert charges[2] == Charge("l2", "l3:Wholesale", "USD", "447", "UK mobile weekend", 40_000, 95, 0, 63_334)
    assert [charges[0], charges[1], charges[3]] == [CAROL_95, L1_95, L3_95]


def test_each_level_matches_its_own_longest_prefix() -> None:
    charges = rate_call(CHAIN, LONDON, MONDAY_0830_NEW_YORK, 95)
    assert charges == [
        # "44" by the second: ceil(100 000 x 95 / 60 = 158 333.3) = 158 334.
        Charge("carol", "l1:Retail", "EUR", "44", "United Kingdom", 100_000, 95, 0, 158_334),
        # "44", resolution 60: 120 s x 0.06 = 0.12.
        Charge("l1", "l2:Resellers", "EUR", "44", "United Kingdom", 60_000, 120, 0, 120_000),
        # "44" by the second, any time: 30 000 x 95 / 60 = 47 500.
        Charge("l2", "l3:Wholesale", "USD", "44", "United Kingdom", 30_000, 95, 0, 47_500),
        L3_95,
    ]


def test_a_call_within_one_levels_grace_period_is_free_at_that_level_only() -> None:
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 3)
    assert charges == [
        # minimal 30: 30 s; 0.05 + 0.25 / 2 = 0.175.
        Charge("carol", "l1:Retail", "EUR", "447", "UK mobile", 250_000, 30, 0, 175_000),
        # resolution 60: 60 s; 0.18.
        Charge("l1", "l2:Resellers", "EUR", "4477", "UK mobile 77", 180_000, 60, 0, 180_000),
        # grace period 3: nothing billed, nothing charged, but the rate is still recorded.
        Charge("l2", "l3:Wholesale", "USD", "447", "UK mobile peak", 123_400, 0, 0, 0),
        # minimal 60: 60 s, 10 free -> 50; 0.01 + ceil(50 000 x 50 / 60 = 41 666.7) = 10 000 + 41 667.
        Charge("l3", "provider:Base", "USD", "4", "Zone 4", 50_000, 60, 0, 51_667),
    ]


def test_an_unanswered_call_costs_nothing_at_any_level() -> None:
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 0)
    assert [(c.account, c.billed_seconds, c.amount_micros) for c in charges] == [
        ("carol", 0, 0),
        ("l1", 0, 0),
        ("l2", 0, 0),
        ("l3", 0, 0),
    ]


# No rate: the call is refused, naming the level that cannot price it.


def test_no_rate_names_the_level_that_has_no_rate() -> None:
    # carol and l1 price France; l2's tariff does not.
    with pytest.raises(NoRate) as refusal:
        rate_call(CHAIN, PARIS, MONDAY_0830_NEW_YORK, 60)
    assert refusal.value.reason == "no_rate"
    assert refusal.value.account == "l2"
    assert "l3:Wholesale" in refusal.value.message
    assert PARIS in refusal.value.message


def test_no_rate_at_the_first_level_names_the_client() -> None:
    with pytest.raises(NoRate) as refusal:
        rate_call(CHAIN, TOKYO, MONDAY_0830_NEW_YORK, 60)
    assert refusal.value.account == "carol"
    assert "l1:Retail" in refusal.value.message


def test_a_rate_outside_its_window_is_no_rate_at_that_level() -> None:
    peak_only = Level(
        "l2",
        "l3:Peak only",
        "USD",
        RateTable([RateRow("447", "UK mobile peak", Pricing(123_400), PEAK)], time_zone="America/New_York"),
    )
    assert rate_call([CLIENT, peak_only], UK_MOBILE, MONDAY_0830_NEW_YORK, 95)[1].amount_micros == 195_384
    with pytest.raises(NoRate) as refusal:
        rate_call([CLIENT, peak_only], UK_MOBILE, MONDAY_0730_NEW_YORK, 95)
    assert refusal.value.account == "l2"


def test_no_levels_no_charges() -> None:
    assert rate_call([], UK_MOBILE, MONDAY_0830_NEW_YORK, 95) == []


# A plan: only at the first level, only for the destinations it covers.

UK_MOBILE_PLAN = Plan("UK mobiles 100", "EUR", 5_000_000, Period.MONTH, 6_000, ("447",))


def test_a_plan_partly_covering_a_call_lowers_the_clients_charge_only() -> None:
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 95, Allowance(UK_MOBILE_PLAN, seconds_left=60))
    # carol: billed 96, 60 from the plan, 36 paid for: 0.05 + 0.25 x 36 / 60 = 0.05 + 0.15.
    assert charges[0] == Charge("carol", "l1:Retail", "EUR", "447", "UK mobile", 250_000, 96, 60, 200_000)
    # Every other level pays as if there were no plan.
    assert charges[1:] == rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 95)[1:]
    assert [c.plan_seconds for c in charges[1:]] == [0, 0, 0]


def test_a_plan_fully_covering_a_call_leaves_the_client_nothing_to_pay_and_the_others_everything() -> None:
    charges = rate_call(CHAIN, UK_MOBILE, MONDAY_0830_NEW_YORK, 95, Allowance(UK_MOBILE_PLAN, seconds_left=6_000))
    assert charges[0] == Charge("carol", "l1:Retail", "EUR", "447", "UK mobile", 250_000, 96, 96, 0)
    assert [c.amount_micros for c in charges[1:]] == [360_000, 195_384, 101_667]


def test_a_plan_does_not_apply_to_destinations_it_does_not_cover() -> None:
    # A London landline is not a "447" UK mobile: carol pays in full, 158 334, and takes nothing from the plan.
    charges = rate_call(CHAIN, LONDON, MONDAY_0830_NEW_YORK, 95, Allowance(UK_MOBILE_PLAN, seconds_left=6_000))
    assert charges == rate_call(CHAIN, LONDON, MONDAY_0830_NEW_YORK, 95)
    assert (charges[0].plan_seconds, charges[0].amount_micros) == (0, 158_334)


def test_a_plan_without_prefixes_covers_every_destination() -> None:
    everything = Plan("All 100", "EUR", 5_000_000, Period.MONTH, 6_000)
    charges = rate_call(CHAIN, LONDON, MONDAY_0830_NEW_YORK, 95, Allowance(everything, seconds_left=6_000))
    assert (charges[0].plan_seconds, charges[0].amount_micros) == (95, 0)


def test_a_plan_takes_nothing_for_a_call_within_the_grace_period() -> None:
    table = RateTable([RateRow("44", "United Kingdom", Pricing(60_000, grace_period=5))], time_zone="UTC")
    graceful = Level("carol", "l1:Retail", "EUR", table)
    [charge] = rate_call([graceful], UK_MOBILE, MONDAY_0830_NEW_YORK, 5, Allowance(UK_MOBILE_PLAN, seconds_left=60))
    assert (charge.billed_seconds, charge.plan_seconds, charge.amount_micros) == (0, 0, 0)


# docs/design.md section 3's worked examples, each as a one-level chain (price 0.06 per minute unless stated).


@pytest.mark.parametrize(
    ("pricing", "duration", "billed", "amount"),
    [
        (Pricing(60_000, minimal_time=30, resolution=6), 31, 36, 36_000),  # 0.036000
        (Pricing(60_000, connect_fee_micros=100_000, resolution=60), 61, 120, 220_000),  # 0.220000
        (Pricing(60_000, grace_period=5), 5, 0, 0),  # within the grace period: 0
        (Pricing(60_000, grace_period=5), 6, 6, 6_000),  # 0.006000
        (Pricing(13_000), 7, 7, 1_517),  # 0.0015166... -> 0.001517
    ],
    ids=["minimal-30-resolution-6", "resolution-60-connect-fee", "grace-5", "grace-5-plus-1", "round-up"],
)
def test_the_worked_examples_of_the_design_as_one_level_chains(
    pricing: Pricing, duration: int, billed: int, amount: int
) -> None:
    level = Level("carol", "provider:Retail", "USD", RateTable([RateRow("1", "NANP", pricing)], time_zone="UTC"))
    assert rate_call([level], "12125550100", MONDAY_0830_NEW_YORK, duration) == [
        Charge("carol", "provider:Retail", "USD", "1", "NANP", pricing.price_micros, billed, 0, amount)
    ]


pricings = st.builds(
    Pricing,
    price_micros=st.integers(0, 10_000_000),
    connect_fee_micros=st.integers(0, 1_000_000),
    minimal_time=st.integers(0, 120),
    resolution=st.integers(1, 120),
    grace_period=st.integers(0, 30),
    free_seconds=st.integers(0, 300),
)


@given(pricings, st.integers(0, 20_000), st.none() | st.integers(0, 20_000))
@settings(max_examples=500)
def test_the_first_level_splits_the_call_with_its_plan_and_every_other_level_pays_its_cost(
    pricing: Pricing, duration: int, seconds_left: int | None
) -> None:
    level = Level("carol", "provider:Retail", "USD", RateTable([RateRow("1", "NANP", pricing)], time_zone="UTC"))
    allowance = None if seconds_left is None else Allowance(Plan("NANP", "USD", 0, Period.DAY, 0), seconds_left)
    first, second = rate_call([level, level], "12125550100", MONDAY_0830_NEW_YORK, duration, allowance)
    billed, cost = billed_seconds(pricing, duration), cost_micros(pricing, duration)
    assert first.billed_seconds == second.billed_seconds == billed
    free = pricing.price_micros == 0 and pricing.connect_fee_micros == 0  # spends no included seconds
    if seconds_left is None or free:
        assert (first.plan_seconds, first.amount_micros) == (0, cost)
    else:
        assert (first.plan_seconds, first.amount_micros) == split_cost(pricing, duration, seconds_left)
    assert (second.plan_seconds, second.amount_micros) == (0, cost)
