"""Plans (subscriptions): a fee per period and included seconds consumed before money. Pure.

Included seconds count in billed seconds (after the minimal time and the resolution): a call to a
covered destination takes what it can from what is left this period, and only the rest is charged,
with the connect fee and free seconds applied to that rest. A call entirely covered costs nothing,
not even the connect fee. With rollover, what is left at the end of a period carries over to the next
one, at most one period's worth.

Periods (in UTC) follow one another without gap or overlap: a day, a week, or a calendar month
anchored on the day the series started (31 January, 28 or 29 February, 31 March: a short month
clamps the day but the anchor stays). A subscription is charged its plan's fee at the start of each
period; ``next_charge`` says which period a due subscription is charged for next.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from tollway.errors import Refusal, require
from tollway.rating.cost import Pricing, affordable_seconds, billed_seconds
from tollway.rating.tariff import check_prefix

INCLUDED_SECONDS_MAX = 10_000_000  # about 115 days of talk per period
PLAN_PREFIXES_MAX = 1_000
PLAN_RETRY_SECONDS = 300  # how often a plan suspended for its unpaid fee is charged again
PLAN_UNPAID = "plan_unpaid"  # why a plan is suspended: its fee could not be paid
ACCOUNT_CLOSED = "account_closed"  # why a plan ended: its account was closed


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"  # paid for this period: credit control uses its seconds
    SUSPENDED = "suspended"  # not usable (its fee unpaid): calls are charged money, the account is untouched
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    currency: str
    fee_micros: int
    period: Period
    included_seconds: int
    prefixes: tuple[str, ...] = ()  # empty: every destination
    rollover: bool = False

    def __post_init__(self) -> None:
        if self.fee_micros < 0:
            raise Refusal("price_invalid", "a plan's fee is never negative")
        if not 0 <= self.included_seconds <= INCLUDED_SECONDS_MAX:
            raise Refusal("seconds_invalid", f"included seconds run from 0 to {INCLUDED_SECONDS_MAX}")
        if len(self.prefixes) > PLAN_PREFIXES_MAX:
            raise Refusal("plan_prefixes_invalid", f"a plan covers at most {PLAN_PREFIXES_MAX} prefixes")
        for prefix in self.prefixes:
            check_prefix(prefix)

    def covers(self, number: str) -> bool:
        return not self.prefixes or number.startswith(self.prefixes)

    def allowance_after(self, seconds_left: int) -> int:
        """The seconds a new period starts with, given what was left of the last one."""
        carried = min(seconds_left, self.included_seconds) if self.rollover else 0
        return self.included_seconds + carried


def split_cost(pricing: Pricing, duration: int, allowance_seconds: int) -> tuple[int, int]:
    """(seconds taken from the plan, money charged) for a call, given the seconds left in the plan."""
    billed = billed_seconds(pricing, duration)
    if billed == 0:
        return 0, 0
    from_plan = min(max(allowance_seconds, 0), billed)
    rest = billed - from_plan
    if rest == 0:
        return from_plan, 0
    charged = max(0, rest - pricing.free_seconds)
    return from_plan, pricing.connect_fee_micros + -(-(pricing.price_micros * charged) // 60)


def affordable_with_plan(pricing: Pricing, amount_micros: int, allowance_seconds: int, *, cap: int) -> int:
    """The largest duration d <= cap whose money part (``split_cost``) fits ``amount_micros``, exactly.

    Billed seconds the plan covers cost nothing, not even the connect fee; beyond them the call costs
    connect_fee + price x (billed - allowance - free_seconds) / 60, which is the plain cost with the
    allowance added to the free seconds. So: if the connect fee is affordable, the plain inverse with
    those free seconds; otherwise only the calls the plan (or the grace period) covers entirely.
    """
    allowance = max(allowance_seconds, 0)
    if amount_micros >= pricing.connect_fee_micros:
        widened = replace(pricing, free_seconds=pricing.free_seconds + allowance)
        return affordable_seconds(widened, amount_micros, cap=cap)
    covered = allowance // pricing.resolution * pricing.resolution  # the longest billed time the plan pays
    entirely = covered if covered >= max(pricing.minimal_time, 1) else 0
    return max(0, min(cap, max(entirely, pricing.grace_period)))


# -- periods --------------------------------------------------------------------------------------

_PERIOD_DAYS = {Period.DAY: 1, Period.WEEK: 7}


def _check_utc(instant: datetime) -> None:
    require(instant.utcoffset() == timedelta(0), f"periods are reckoned in UTC, not at {instant.isoformat()}")


def add_months(instant: datetime, months: int, anchor_day: int) -> datetime:
    """``instant`` moved by whole calendar months, on ``anchor_day`` or the month's last day if shorter."""
    index = instant.year * 12 + instant.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return instant.replace(year=year, month=month + 1, day=min(anchor_day, last_day))


def period_end(period: Period, start: datetime, *, anchor_day: int | None = None) -> datetime:
    """The end of the period that starts at ``start``, which is the start of the next one.

    ``anchor_day``: for a month, the day of the month the series is anchored on (default: ``start``'s).
    """
    _check_utc(start)
    if period is Period.MONTH:
        return add_months(start, 1, anchor_day or start.day)
    return start + timedelta(days=_PERIOD_DAYS[period])


def next_period_end(period: Period, start: datetime, end: datetime) -> datetime:
    """The end of the period after [start, end), keeping a month's anchor day.

    The two boundaries of a month are in consecutive months, and no two consecutive months both have
    fewer than 31 days: at most one of the two days was clamped, so the larger one is the anchor.
    """
    return period_end(period, end, anchor_day=max(start.day, end.day) if period is Period.MONTH else None)


def period_containing(period: Period, anchor: datetime, instant: datetime) -> tuple[int, datetime, datetime]:
    """(index, start, end) of the period of the series starting at ``anchor`` that holds ``instant``.

    An instant before the anchor is in the first period (index 0).
    """
    _check_utc(anchor)
    _check_utc(instant)
    if instant <= anchor:
        index = 0
    elif period is Period.MONTH:
        index = (instant.year - anchor.year) * 12 + instant.month - anchor.month
        if add_months(anchor, index, anchor.day) > instant:
            index -= 1
    else:
        index = (instant - anchor) // timedelta(days=_PERIOD_DAYS[period])
    return index, _boundary(period, anchor, index), _boundary(period, anchor, index + 1)


def _boundary(period: Period, anchor: datetime, index: int) -> datetime:
    if period is Period.MONTH:
        return add_months(anchor, index, anchor.day)
    return anchor + timedelta(days=_PERIOD_DAYS[period] * index)


# -- subscriptions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    """A client's plan: the period it is in, what is left of it, and whether credit control may use it.

    ``period_end`` is None for a subscription made before fees were charged (its first fee is due);
    for a plan suspended because its fee was unpaid it is when the fee is tried again.
    """

    id: int
    node_id: int
    plan_id: int
    plan_owner_id: int
    plan: Plan
    status: SubscriptionStatus
    period_start: datetime
    period_end: datetime | None
    seconds_left: int
    status_reason: str | None = None

    @property
    def renewable(self) -> bool:
        """Charged by the scheduler when due: active plans, and plans suspended only for their unpaid fee."""
        return self.status is SubscriptionStatus.ACTIVE or (
            self.status is SubscriptionStatus.SUSPENDED and self.status_reason == PLAN_UNPAID
        )

    def due(self, now: datetime) -> bool:
        return self.renewable and (self.period_end is None or self.period_end <= now)


@dataclass(frozen=True, slots=True)
class PeriodCharge:
    """The next period of a subscription, charged its plan's fee at ``start``."""

    start: datetime
    end: datetime
    allowance_seconds: int  # the seconds the period starts with once paid
    resumes: bool  # the plan was suspended for its fee: paying it makes the plan usable again


def next_charge(subscription: Subscription, now: datetime) -> PeriodCharge | None:
    """The period a due subscription is charged for next; None when nothing is due at ``now``.

    - Active: the period that starts where the last one ended, with rollover applied. A scheduler that
      was down catches up one period at a time: the plan was usable all along.
    - Suspended for its fee: the plan was not usable, so nothing is owed for the time it was not; it
      resumes with a new period from ``now`` (a new anchor), with its included seconds and no rollover.
    - Never charged (made before fees were charged): the period of the series anchored on its start that
      holds ``now``; the seconds it was given stand if that is its first period. Periods before it are
      not charged retroactively: nothing charged them when they ran.
    """
    if not subscription.due(now):
        return None
    plan = subscription.plan
    if subscription.status is SubscriptionStatus.SUSPENDED:
        start = now.replace(microsecond=0)
        return PeriodCharge(start, period_end(plan.period, start), plan.included_seconds, resumes=True)
    if subscription.period_end is None:
        index, start, end = period_containing(plan.period, subscription.period_start, now)
        seconds = subscription.seconds_left if index == 0 else plan.allowance_after(subscription.seconds_left)
        return PeriodCharge(start, end, seconds, resumes=False)
    start = subscription.period_end
    end = next_period_end(plan.period, subscription.period_start, start)
    return PeriodCharge(start, end, plan.allowance_after(subscription.seconds_left), resumes=False)


def fee_transfer_id(subscription_id: int, period_start: datetime) -> str:
    """The ledger id of one period's fee: a second charge of the same period is the same transfer."""
    _check_utc(period_start)
    return f"plan:{subscription_id}:{period_start:%Y%m%dT%H%M%SZ}"
