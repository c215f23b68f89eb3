"""The cost of a call and its exact inverse, in integers (docs/design.md section 3). Pure.

Cost of a call of ``d`` answered seconds:
1. d = 0, or d <= grace_period: 0.
2. billed = ceil(max(d, minimal_time) / resolution) * resolution; charged = max(0, billed - free_seconds).
3. cost = connect_fee + price * charged / 60, rounded up to a whole micro-unit.

The inverse answers the real-time engine's question "how long may this call last on this much money?"
exactly: the largest d whose cost fits, never an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.errors import Refusal

SECONDS_PER_MINUTE = 60


@dataclass(frozen=True, slots=True)
class Pricing:
    """The arithmetic part of a rate row, in micro-units and whole seconds."""

    price_micros: int  # per minute
    connect_fee_micros: int = 0
    minimal_time: int = 0
    resolution: int = 1
    grace_period: int = 0
    free_seconds: int = 0

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise Refusal("resolution_invalid", "a resolution is at least one second")
        if min(self.price_micros, self.connect_fee_micros, self.minimal_time, self.grace_period, self.free_seconds) < 0:
            raise Refusal("pricing_negative", "prices, fees and times are never negative")


def billed_seconds(pricing: Pricing, duration: int) -> int:
    """Seconds the call is billed for, before free seconds; 0 for a call that costs nothing."""
    if duration <= 0 or duration <= pricing.grace_period:
        return 0
    counted = max(duration, pricing.minimal_time)
    return -(-counted // pricing.resolution) * pricing.resolution


def charged_seconds(pricing: Pricing, duration: int) -> int:
    return max(0, billed_seconds(pricing, duration) - pricing.free_seconds)


def cost_micros(pricing: Pricing, duration: int) -> int:
    if billed_seconds(pricing, duration) == 0:
        return 0
    # ceil(price * charged / 60) with integers only.
    return pricing.connect_fee_micros + -(-(pricing.price_micros * charged_seconds(pricing, duration)) // 60)


def affordable_seconds(pricing: Pricing, amount_micros: int, *, cap: int) -> int:
    """The largest duration d <= cap with cost(d) <= amount, exactly.

    Calls up to the grace period are free, so they are always affordable. Beyond it, cost is
    connect_fee + ceil(price * charged / 60), and ceil(x / 60) <= k exactly when x <= 60 k, so the
    most charged seconds the money buys is floor(60 (amount - connect_fee) / price); adding the free
    seconds back and rounding down to the resolution gives the longest billed time, which is also the
    longest duration, as long as it reaches the minimal time.
    """
    if cap <= 0:
        return 0
    free_calls = min(cap, pricing.grace_period)
    if amount_micros < pricing.connect_fee_micros:
        return free_calls
    if pricing.price_micros == 0:
        return cap  # only the connect fee, which is paid: no money limit on the length
    charged_max = (SECONDS_PER_MINUTE * (amount_micros - pricing.connect_fee_micros)) // pricing.price_micros
    billed_max = (charged_max + pricing.free_seconds) // pricing.resolution * pricing.resolution
    if billed_max < max(pricing.minimal_time, 1):
        return free_calls
    return max(free_calls, min(cap, billed_max))
