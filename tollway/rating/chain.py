"""Rating one call through the whole ownership chain. Pure.

A client pays its owner at the tariff its owner assigned to it; that reseller pays its own owner at
the tariff assigned to it; and so on up to the provider. Each level is priced on its own tariff (its
own prefixes, windows, time zone and billing terms), so one call gives one charge per level. A plan
only ever applies at the first level, the client's, and never spends included seconds on a
destination that is free anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from tollway.errors import Refusal
from tollway.rating.cost import Pricing
from tollway.rating.plans import Plan, split_cost
from tollway.rating.rates import RateTable


@dataclass(frozen=True, slots=True)
class Level:
    """One balance up the chain and the tariff it pays at."""

    account: str  # the login of the node that pays
    tariff: str  # the tariff's name
    currency: str
    table: RateTable


_new_charge = tuple.__new__  # a Charge without the Python-level __new__ of NamedTuple


class Charge(NamedTuple):
    """What one level pays for one call (a tuple: the batch rater makes millions of them)."""

    account: str
    tariff: str
    currency: str
    prefix: str
    description: str
    price_micros: int  # per minute
    billed_seconds: int
    plan_seconds: int
    amount_micros: int


@dataclass(frozen=True, slots=True)
class Allowance:
    """The client's plan and the seconds it has left."""

    plan: Plan
    seconds_left: int


class NoRate(Refusal):
    def __init__(self, account: str, tariff: str, number: str) -> None:
        super().__init__("no_rate", f"tariff {tariff} of {account} has no rate for {number} at that time")
        self.account = account


def rate_call(
    levels: Sequence[Level], number: str, epoch: int, duration: int, allowance: Allowance | None = None
) -> list[Charge]:
    """The charges of a call to ``number`` (E.164) that started at ``epoch`` and lasted ``duration`` s."""
    charges: list[Charge] = []
    for level in levels:
        match = level.table.select_at(number, epoch)
        if match is None:
            raise NoRate(level.account, level.tariff, number)
        prefix, rate = match
        pricing = rate.pricing
        # billed_seconds and cost_micros, inlined: this is the batch rater's inner loop.
        if duration <= 0 or duration <= pricing.grace_period:
            billed = amount = 0
        else:
            resolution = pricing.resolution
            billed = -(-max(duration, pricing.minimal_time) // resolution) * resolution
            charged = billed - pricing.free_seconds
            amount = pricing.connect_fee_micros + (-(-(pricing.price_micros * charged) // 60) if charged > 0 else 0)
        plan_seconds = 0
        if (
            allowance is not None
            and not charges  # the client's level
            and billed
            and _worth_plan_seconds(pricing)
            and allowance.plan.covers(number)
        ):
            plan_seconds, amount = split_cost(pricing, duration, allowance.seconds_left)
        charges.append(
            _new_charge(
                Charge,
                (
                    level.account,
                    level.tariff,
                    level.currency,
                    prefix,
                    rate.description,
                    pricing.price_micros,
                    billed,
                    plan_seconds,
                    amount,
                ),
            )
        )
    return charges


def _worth_plan_seconds(pricing: Pricing) -> bool:
    return pricing.price_micros > 0 or pricing.connect_fee_micros > 0
