"""Plan periods and what a subscription is charged next: pure arithmetic, in UTC, checked by hand and by property."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import InvariantBroken
from tollway.rating.plans import (
    PLAN_UNPAID,
    Period,
    PeriodCharge,
    Plan,
    Subscription,
    SubscriptionStatus,
    fee_transfer_id,
    next_charge,
    next_period_end,
    period_containing,
    period_end,
)

JAN_31 = datetime(2026, 1, 31, 10, 30, tzinfo=UTC)


def series(period: Period, anchor: datetime, count: int) -> list[datetime]:
    """The first ``count`` + 1 boundaries of the periods starting at ``anchor``, as the scheduler makes them."""
    boundaries = [anchor, period_end(period, anchor)]
    while len(boundaries) <= count:
        boundaries.append(next_period_end(period, boundaries[-2], boundaries[-1]))
    return boundaries


def months_of(instant: datetime) -> int:
    return instant.year * 12 + instant.month - 1


# By hand.


def test_a_month_anchored_on_the_31st_clamps_to_short_months_and_comes_back_to_the_31st() -> None:
    assert [b.date().isoformat() for b in series(Period.MONTH, JAN_31, 5)] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
    ]
    assert all(b.time().isoformat() == "10:30:00" for b in series(Period.MONTH, JAN_31, 5))


def test_a_leap_february_ends_on_the_29th_and_an_anchor_on_the_30th_comes_back_to_it() -> None:
    assert [b.day for b in series(Period.MONTH, datetime(2028, 1, 31, tzinfo=UTC), 2)] == [31, 29, 31]
    assert [b.day for b in series(Period.MONTH, datetime(2026, 1, 30, tzinfo=UTC), 3)] == [30, 28, 30, 30]
    assert [b.day for b in series(Period.MONTH, datetime(2026, 1, 15, tzinfo=UTC), 2)] == [15, 15, 15]


def test_a_year_end_rolls_into_january_of_the_next_year() -> None:
    assert period_end(Period.MONTH, datetime(2026, 12, 31, tzinfo=UTC)) == datetime(2027, 1, 31, tzinfo=UTC)


def test_days_and_weeks_are_exact_lengths_of_utc_time() -> None:
    assert period_end(Period.DAY, JAN_31) == datetime(2026, 2, 1, 10, 30, tzinfo=UTC)
    assert period_end(Period.WEEK, JAN_31) == datetime(2026, 2, 7, 10, 30, tzinfo=UTC)


def test_the_period_holding_an_instant_is_found_without_walking_the_series() -> None:
    assert period_containing(Period.MONTH, JAN_31, datetime(2026, 3, 31, 10, 29, tzinfo=UTC)) == (
        1,
        datetime(2026, 2, 28, 10, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 10, 30, tzinfo=UTC),
    )
    assert period_containing(Period.MONTH, JAN_31, datetime(2026, 3, 31, 10, 30, tzinfo=UTC))[0] == 2
    assert period_containing(Period.DAY, JAN_31, JAN_31 - timedelta(days=3))[0] == 0  # before the anchor: the first
    assert period_containing(Period.WEEK, JAN_31, JAN_31 + timedelta(days=15))[1] == JAN_31 + timedelta(days=14)


def test_periods_are_reckoned_in_utc_only() -> None:
    with pytest.raises(InvariantBroken):
        period_end(Period.DAY, datetime(2026, 1, 31))  # naive
    with pytest.raises(InvariantBroken):
        fee_transfer_id(1, datetime(2026, 1, 31))


def test_a_periods_fee_has_one_ledger_id_made_of_the_subscription_and_the_periods_start() -> None:
    assert fee_transfer_id(42, JAN_31) == "plan:42:20260131T103000Z"


# By property.

anchors = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, period=st.sampled_from(Period), count=st.integers(1, 40))
def test_periods_follow_one_another_strictly_increasing_and_never_drift_from_their_anchor(
    anchor: datetime, period: Period, count: int
) -> None:
    boundaries = series(period, anchor, count)
    assert all(earlier < later for earlier, later in pairwise(boundaries))
    for index, boundary in enumerate(boundaries):
        # Walking the series period by period lands where the direct arithmetic from the anchor does.
        assert period_containing(period, anchor, boundary)[:2] == (index, boundary)
        assert boundary.time() == anchor.time() and boundary.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, count=st.integers(1, 40))
def test_a_monthly_series_never_skips_or_repeats_a_month_and_keeps_its_anchor_day(anchor: datetime, count: int) -> None:
    boundaries = series(Period.MONTH, anchor, count)
    for index, boundary in enumerate(boundaries):
        assert months_of(boundary) == months_of(anchor) + index
        assert boundary.day == min(anchor.day, calendar.monthrange(boundary.year, boundary.month)[1])


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, period=st.sampled_from(Period), later=st.timedeltas(timedelta(0), timedelta(days=3_000)))
def test_every_instant_after_the_anchor_is_in_exactly_the_period_found_for_it(
    anchor: datetime, period: Period, later: timedelta
) -> None:
    instant = anchor + later
    index, start, end = period_containing(period, anchor, instant)
    assert start <= instant < end
    assert end == period_end(period, start, anchor_day=anchor.day)
    assert series(period, anchor, index + 1)[index : index + 2] == [start, end]


# What a subscription is charged next.


def subscription(
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    reason: str | None = None,
    period_end_at: datetime | None = datetime(2026, 2, 28, 10, 30, tzinfo=UTC),
    seconds_left: int = 70,
    rollover: bool = True,
) -> Subscription:
    plan = Plan("north-city:uk", "USD", 3_000_000, Period.MONTH, 120, ("44",), rollover)
    return Subscription(1, 5, 2, 4, plan, status, JAN_31, period_end_at, seconds_left, reason)


FEB_28 = datetime(2026, 2, 28, 10, 30, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 10, 30, tzinfo=UTC)


def test_an_active_plan_is_charged_the_period_that_starts_where_the_last_one_ended() -> None:
    assert next_charge(subscription(), FEB_28 - timedelta(seconds=1)) is None  # not due yet
    # 70 s left with rollover: 120 + 70 = 190; without, 120.
    assert next_charge(subscription(), FEB_28) == PeriodCharge(FEB_28, MAR_31, 190, resumes=False)
    assert next_charge(subscription(rollover=False), FEB_28 + timedelta(days=90)) == PeriodCharge(
        FEB_28, MAR_31, 120, resumes=False
    )  # behind by several periods: still the next one first


def test_a_plan_suspended_for_its_fee_resumes_from_now_with_its_included_seconds_only() -> None:
    suspended = subscription(status=SubscriptionStatus.SUSPENDED, reason=PLAN_UNPAID, period_end_at=FEB_28)
    now = datetime(2026, 3, 5, 8, 0, 0, 123_456, tzinfo=UTC)
    start = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert next_charge(suspended, now) == PeriodCharge(start, datetime(2026, 4, 5, 8, 0, tzinfo=UTC), 120, True)


def test_ended_plans_and_plans_suspended_for_another_reason_are_never_charged() -> None:
    later = FEB_28 + timedelta(days=400)
    assert next_charge(subscription(status=SubscriptionStatus.ENDED, reason="account_closed"), later) is None
    assert next_charge(subscription(status=SubscriptionStatus.SUSPENDED, reason="fraud"), later) is None


def test_a_plan_never_charged_pays_once_for_the_period_it_is_in_now() -> None:
    legacy = subscription(period_end_at=None)
    # Still in its first period: that one, with the seconds it was given.
    assert next_charge(legacy, JAN_31 + timedelta(days=3)) == PeriodCharge(JAN_31, FEB_28, 70, resumes=False)
    # Two periods on: only the third, with rollover (120 + 70); the two before it are not charged.
    assert next_charge(legacy, MAR_31 + timedelta(days=1)) == PeriodCharge(
        MAR_31, datetime(2026, 4, 30, 10, 30, tzinfo=UTC), 190, resumes=False
    )
