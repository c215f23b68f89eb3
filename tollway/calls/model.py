"""Credit control, the pure part: how long a call may last when every level up the chain pays for it.

A call by a client is paid at every level: the client pays its reseller, that reseller pays its
owner, and so on. Each level can afford some duration, computed exactly from what it has available
(balance + credit limit - reservations) at its own tariff, with the client's plan seconds first.
The call may last the least of those durations, capped by the account's maximum call length; the
level that gives the least is the one that would end the call, and a refusal names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from tollway.errors import Refusal
from tollway.rating.cost import Pricing
from tollway.rating.plans import affordable_with_plan

CALL_SECONDS_MAX = 4 * 3_600  # the longest call anyone may be authorized for, whatever the balances


@dataclass(frozen=True, slots=True)
class LevelFunds:
    """One level's side of a call: the price it pays and the money it has for it."""

    account: str
    pricing: Pricing
    available_micros: int  # balance + credit limit - reserved; may be negative after an overshoot
    allowance_seconds: int = 0  # plan seconds this call may use (the client's level only)


@dataclass(frozen=True, slots=True)
class Authorization:
    seconds: int  # the longest the call may last
    limited_by: str | None  # the account whose funds set it; None when the cap did


class InsufficientFunds(Refusal):
    def __init__(self, account: str) -> None:
        super().__init__("insufficient_funds", f"{account} cannot pay for a call to this destination")
        self.account = account


def authorize(levels: Sequence[LevelFunds], *, cap: int = CALL_SECONDS_MAX) -> Authorization:
    """The longest duration every level can pay for, exactly; refused if that is not one chargeable second.

    A call no longer than the grace period is free, but it is still refused when no level-one second
    could be paid beyond it: a call is authorized only if it could be charged.
    """
    longest = min(cap, CALL_SECONDS_MAX)
    seconds, limited_by = longest, None
    for level in levels:
        own = affordable_with_plan(level.pricing, max(level.available_micros, 0), level.allowance_seconds, cap=longest)
        if own <= level.pricing.grace_period and own < longest and _charges_beyond_grace(level):
            raise InsufficientFunds(level.account)
        if own < seconds:
            seconds, limited_by = own, level.account
    return Authorization(seconds, limited_by)


def _charges_beyond_grace(level: LevelFunds) -> bool:
    return level.pricing.price_micros > 0 or level.pricing.connect_fee_micros > 0


@dataclass(frozen=True, slots=True)
class Grant:
    """Seconds of talk time reserved for a call at every level, counted from its answer."""

    total_seconds: int  # granted in all since the answer, this grant included
    final: bool  # no extension will follow: the call must end when these run out
    limited_by: str | None  # the level that could not fund a full quota, if one could not


def next_grant(levels: Sequence[LevelFunds], *, granted: int, quota: int, hard_max: int) -> Grant:
    """The grant after ``granted`` seconds: one more quota if every level can fund it, else what they can.

    Each level's ``available_micros`` must include what it has already reserved for this call (and its
    ``allowance_seconds`` the plan seconds reserved for it): the new reservation replaces the old one.
    A grant never shrinks below what was granted, which is paid for already; it never goes past the
    call's hard maximum, which the switch enforces on its own.
    """
    target = min(granted + max(quota, 1), hard_max)
    total, limited_by = target, None
    for level in levels:
        own = affordable_with_plan(level.pricing, max(level.available_micros, 0), level.allowance_seconds, cap=target)
        if own < total:
            total, limited_by = own, level.account
    total = max(total, granted)
    return Grant(total, total >= hard_max or total < target, limited_by)


class Overshoot(StrEnum):
    """Why a reported duration was not believed, and the call charged less than the switch said."""

    BEYOND_GRANT = "beyond_grant"  # longer than every second granted to the call, plus the margin
    BEYOND_WALL_CLOCK = "beyond_wall_clock"  # longer than the time since the answer, plus the margin


@dataclass(frozen=True, slots=True)
class ChargedDuration:
    seconds: int  # what every level is charged for
    overshoot: Overshoot | None  # None: the reported duration is charged as it is


def charged_duration(
    reported_seconds: int, *, granted_seconds: int, elapsed_seconds: int, margin_seconds: int, trusted: bool
) -> ChargedDuration:
    """What a reported duration is charged for: a switch is not trusted with money.

    A duration longer than the call was granted, or than the time since its answer (``elapsed_seconds``,
    by Tollway's clock), by more than the margin, is charged at most what was granted (which is
    reserved: no floor can break) and flagged. A duration within the margin of both is charged as it is,
    its part past the reservation an overshoot the ledger records: a switch's timer runs a little late.
    A trusted switch's durations are always charged as they are.
    """
    if trusted:
        return ChargedDuration(reported_seconds, None)
    if reported_seconds > granted_seconds + margin_seconds:
        return ChargedDuration(granted_seconds, Overshoot.BEYOND_GRANT)
    if reported_seconds > elapsed_seconds + margin_seconds:
        return ChargedDuration(min(reported_seconds, granted_seconds), Overshoot.BEYOND_WALL_CLOCK)
    return ChargedDuration(reported_seconds, None)


def believable_elapsed(
    reported_seconds: int, *, granted_seconds: int, elapsed_seconds: int, margin_seconds: int
) -> Overshoot | None:
    """Whether an interim update's elapsed seconds can be true; None when they can."""
    if reported_seconds > granted_seconds + margin_seconds:
        return Overshoot.BEYOND_GRANT
    if reported_seconds > elapsed_seconds + margin_seconds:
        return Overshoot.BEYOND_WALL_CLOCK
    return None


@dataclass(frozen=True, slots=True)
class Figures:
    """A seller's figures on a set of ended calls (a day's, a destination's, a customer's): how many were
    tried and answered, how long the answered ones lasted, what its customers paid it and what it paid."""

    calls_attempted: int  # ended calls: credit control let them through (refused ones never reached a route)
    calls_answered: int  # those that lasted at least a second
    duration_seconds: int  # of the answered calls
    revenue_micros: int  # in the seller's currency
    cost_micros: int

    @property
    def margin_micros(self) -> int:
        return self.revenue_micros - self.cost_micros

    @property
    def answer_seizure_ratio(self) -> Decimal | None:
        """ASR: answered calls per hundred tried, one decimal, half-up; None without any call."""
        if not self.calls_attempted:
            return None
        return (Decimal(100 * self.calls_answered) / self.calls_attempted).quantize(TENTH, ROUND_HALF_UP)

    @property
    def average_call_duration_seconds(self) -> Decimal | None:
        """ACD: the answered calls' mean length in seconds, one decimal, half-up; None without any."""
        if not self.calls_answered:
            return None
        return (Decimal(self.duration_seconds) / self.calls_answered).quantize(TENTH, ROUND_HALF_UP)


TENTH = Decimal("0.1")
NO_FIGURES = Figures(0, 0, 0, 0, 0)
