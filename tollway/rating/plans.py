"""Plans (subscriptions): a fee per period and included seconds consumed before money. Pure.

Included seconds count in billed seconds (after the minimal time and the resolution): a call to a
covered destination takes what it can from what is left this period, and only the rest is charged,
with the connect fee and free seconds applied to that rest. A call entirely covered costs nothing,
not even the connect fee. With rollover, what is left at the end of a period carries over to the next
one, at most one period's worth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from tollway.errors import Refusal
from tollway.rating.cost import Pricing, affordable_seconds, billed_seconds
from tollway.rating.tariff import check_prefix

INCLUDED_SECONDS_MAX = 10_000_000  # about 115 days of talk per period
PLAN_PREFIXES_MAX = 1_000


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


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
