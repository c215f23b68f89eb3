"""How long a call may last when every level of the chain pays for it: amounts worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.calls.model import (
    CALL_SECONDS_MAX,
    Authorization,
    ChargedDuration,
    InsufficientFunds,
    LevelFunds,
    Overshoot,
    authorize,
    charged_duration,
)
from tollway.rating.cost import Pricing
from tollway.rating.plans import split_cost

# A 4-level chain: what each level pays per minute, and what it has available.
CLIENT = LevelFunds("alice", Pricing(100_000), 1_000_000)  # 0.10/min, 1.00: 600 s
L1 = LevelFunds("north-city", Pricing(60_000, resolution=6), 500_000)  # 0.06/min in 6 s steps, 0.50: 500 -> 498 s
L2 = LevelFunds("atlas-north", Pricing(50_000, resolution=60), 300_000)  # 0.05/min by the minute, 0.30: 360 s
L3 = LevelFunds("atlas", Pricing(40_000, connect_fee_micros=50_000), 250_000)  # 0.05 to connect, 0.20 left: 300 s


def test_the_tightest_level_sets_the_length_and_is_named() -> None:
    assert authorize([CLIENT, L1, L2, L3]) == Authorization(300, "atlas")


@pytest.mark.parametrize(
    ("tight", "expected"),
    [
        (replace(CLIENT, available_micros=200_000), Authorization(120, "alice")),  # 0.20 at 0.10/min
        (replace(L1, available_micros=100_000), Authorization(96, "north-city")),  # 100 s -> 96 in 6 s steps
        (replace(L2, available_micros=100_000), Authorization(120, "atlas-north")),  # 2 whole minutes
        (replace(L3, available_micros=60_000), Authorization(15, "atlas")),  # 0.01 after the fee: 15 s
    ],
    ids=["client", "L1", "L2", "L3"],
)
def test_each_level_in_turn_is_the_tightest(tight: LevelFunds, expected: Authorization) -> None:
    chain = [CLIENT, L1, L2, L3]
    chain = [tight if level.account == tight.account else level for level in chain]
    assert authorize(chain) == expected


def test_the_maximum_call_length_caps_a_rich_chain() -> None:
    rich = [replace(level, available_micros=10**12) for level in (CLIENT, L1, L2, L3)]
    assert authorize(rich, cap=3_600) == Authorization(3_600, None)
    assert authorize(rich, cap=10**9).seconds == CALL_SECONDS_MAX


def test_a_level_that_cannot_pay_one_chargeable_second_refuses_the_call_and_is_named() -> None:
    with pytest.raises(InsufficientFunds) as refused:
        authorize([CLIENT, replace(L2, available_micros=49_999)])  # not one whole minute at 0.05
    assert (refused.value.reason, refused.value.account) == ("insufficient_funds", "atlas-north")
    with pytest.raises(InsufficientFunds):  # a grace period alone does not authorize a call
        authorize([replace(CLIENT, pricing=Pricing(100_000, grace_period=5), available_micros=0)])


def test_plan_seconds_let_a_client_without_money_call_as_long_as_the_plan_covers() -> None:
    client = replace(CLIENT, available_micros=0, allowance_seconds=240)
    assert authorize([client, L1, L2, L3]) == Authorization(240, "alice")


def test_a_free_destination_is_limited_by_the_cap_only_and_an_overshot_balance_counts_as_nothing() -> None:
    free = LevelFunds("alice", Pricing(0), -5_000)
    assert authorize([free], cap=600) == Authorization(600, None)
    with pytest.raises(InsufficientFunds):
        authorize([replace(CLIENT, available_micros=-5_000)])


levels = st.builds(
    LevelFunds,
    account=st.sampled_from(["a", "b", "c", "d"]),
    pricing=st.builds(
        Pricing,
        price_micros=st.integers(0, 500_000),
        connect_fee_micros=st.integers(0, 100_000),
        minimal_time=st.integers(0, 60),
        resolution=st.integers(1, 60),
        grace_period=st.integers(0, 5),
        free_seconds=st.integers(0, 30),
    ),
    available_micros=st.integers(-100_000, 3_000_000),
    allowance_seconds=st.integers(0, 300),
)


@given(st.lists(levels, min_size=1, max_size=4), st.integers(1, 3_600))
@settings(max_examples=300)
def test_every_level_can_pay_for_the_authorized_length_and_one_more_second_breaks_a_level(
    chain: list[LevelFunds], cap: int
) -> None:
    try:
        granted = authorize(chain, cap=cap)
    except InsufficientFunds:
        return

    def money(level: LevelFunds, d: int) -> int:
        return split_cost(level.pricing, d, level.allowance_seconds)[1]

    assert all(money(level, granted.seconds) <= max(level.available_micros, 0) for level in chain)
    if granted.limited_by is not None:
        assert any(money(level, granted.seconds + 1) > max(level.available_micros, 0) for level in chain)


# -- reported durations: a switch is not trusted with money -------------------------------------------


@pytest.mark.parametrize(
    ("reported", "elapsed", "charged", "overshoot"),
    [
        (60, 60, 60, None),  # the whole grant, as long as the call has been up
        (63, 63, 63, None),  # 3 s past the grant, within the 5 s margin: a late timer, charged
        (66, 66, 60, Overshoot.BEYOND_GRANT),  # past the grant by more than the margin: the grant
        (20_000, 1, 60, Overshoot.BEYOND_GRANT),
        (50, 10, 50, Overshoot.BEYOND_WALL_CLOCK),  # longer than the call has been up: flagged, within the grant
        (50, 45, 50, None),  # 5 s more than Tollway's clock: within the margin
    ],
)
def test_a_reported_duration_is_charged_at_most_the_grant_when_it_cannot_be_true(
    reported: int, elapsed: int, charged: int, overshoot: Overshoot | None
) -> None:
    assert charged_duration(
        reported, granted_seconds=60, elapsed_seconds=elapsed, margin_seconds=5, trusted=False
    ) == ChargedDuration(charged, overshoot)


def test_a_trusted_switchs_durations_are_charged_as_reported() -> None:
    assert charged_duration(
        20_000, granted_seconds=60, elapsed_seconds=1, margin_seconds=5, trusted=True
    ) == ChargedDuration(20_000, None)


@given(
    reported=st.integers(0, 10 * CALL_SECONDS_MAX),
    granted=st.integers(0, CALL_SECONDS_MAX),
    elapsed=st.integers(0, 10 * CALL_SECONDS_MAX),
    margin=st.integers(0, 600),
)
@settings(max_examples=500)
def test_an_untrusted_duration_is_never_charged_past_the_grant_and_the_margin(
    reported: int, granted: int, elapsed: int, margin: int
) -> None:
    result = charged_duration(
        reported, granted_seconds=granted, elapsed_seconds=elapsed, margin_seconds=margin, trusted=False
    )
    assert result.seconds <= reported
    assert result.seconds <= granted + margin
    assert (result.overshoot is None) == (result.seconds == reported and reported <= elapsed + margin)
    if result.overshoot is not None:
        assert result.seconds <= granted
