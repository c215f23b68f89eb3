"""Tariffs as written: rate entries with the tariff's defaults, and derived tariffs. Pure.

A rate entry is a row of a rate sheet as the provider wrote it: ``minimal_time``, ``resolution`` and
``grace_period`` may be left to the tariff's defaults (``None``; VoipSwitch writes -1), so that
changing a default changes every row that follows it.

A derived tariff follows a base tariff: price' = price x multiplier + addition (per minute) and
connect_fee' = connect_fee x multiplier, each rounded up to a whole micro-unit, except for the
prefixes it overrides with entries of its own (an override replaces every row of its prefix); a
discount larger than a price makes that destination free. The
base's billing terms (minimal time, resolution, grace period, free seconds, windows, validity) are
kept. It is computed from the base whenever it is read, so it follows every change of the base.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from tollway.errors import Refusal
from tollway.rating.cost import Pricing
from tollway.rating.rates import ALWAYS, PREFIX_DIGITS_MAX, RateRow, WeeklyWindow

TIME_SECONDS_MAX = 86_400  # no minimal time, resolution, grace period or free seconds beyond a day
PRICE_MICROS_MAX = 10**12  # a million units per minute: anything above is a typing error
MULTIPLIER_MAX = Decimal(1000)
DESCRIPTION_LENGTH_MAX = 200  # the column's width
DERIVATION_DEPTH_MAX = 4  # a derived tariff's base may itself be derived, this many times at most


@dataclass(frozen=True, slots=True)
class Defaults:
    """A tariff's defaults for the rows that leave them out."""

    minimal_time: int = 0
    resolution: int = 1
    grace_period: int = 0

    def __post_init__(self) -> None:
        check_seconds("minimal_time", self.minimal_time)
        check_seconds("grace_period", self.grace_period)
        check_resolution(self.resolution)


@dataclass(frozen=True, slots=True)
class RateEntry:
    """One row of a rate sheet, as written."""

    prefix: str
    description: str
    price_micros: int
    connect_fee_micros: int = 0
    minimal_time: int | None = None  # None: the tariff's default
    resolution: int | None = None
    grace_period: int | None = None
    free_seconds: int = 0
    window: WeeklyWindow = ALWAYS
    valid_from: datetime | None = None  # aware; inclusive
    valid_to: datetime | None = None  # aware; exclusive

    def __post_init__(self) -> None:
        # Plain checks, inline: a million-row sheet builds a million entries.
        check_prefix(self.prefix)
        if (
            len(self.description) > DESCRIPTION_LENGTH_MAX
            or "\x00" in self.description
            or not _encodable(self.description)
        ):
            raise Refusal(
                "description_invalid", f"a description is at most {DESCRIPTION_LENGTH_MAX} characters of text"
            )
        if not 0 <= self.price_micros <= PRICE_MICROS_MAX:
            check_price("price", self.price_micros)
        if not 0 <= self.connect_fee_micros <= PRICE_MICROS_MAX:
            check_price("connect_fee", self.connect_fee_micros)
        if self.minimal_time is not None and not 0 <= self.minimal_time <= TIME_SECONDS_MAX:
            check_seconds("minimal_time", self.minimal_time)
        if self.grace_period is not None and not 0 <= self.grace_period <= TIME_SECONDS_MAX:
            check_seconds("grace_period", self.grace_period)
        if not 0 <= self.free_seconds <= TIME_SECONDS_MAX:
            check_seconds("free_seconds", self.free_seconds)
        if self.resolution is not None and not 1 <= self.resolution <= TIME_SECONDS_MAX:
            check_resolution(self.resolution)
        if self.valid_from is not None or self.valid_to is not None:
            self._check_validity()

    def _check_validity(self) -> None:
        if any(v is not None and v.tzinfo is None for v in (self.valid_from, self.valid_to)):
            raise Refusal("validity_invalid", "validity dates need a time zone")
        # Kept in UTC: two instants in a repeated autumn hour of a zone would otherwise compare wrong.
        for name in ("valid_from", "valid_to"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not UTC:
                object.__setattr__(self, name, value.astimezone(UTC))
        if self.valid_from is not None and self.valid_to is not None and self.valid_to <= self.valid_from:
            raise Refusal("validity_invalid", "valid_to must come after valid_from")

    def resolve(self, defaults: Defaults) -> RateRow:
        pricing = Pricing(
            price_micros=self.price_micros,
            connect_fee_micros=self.connect_fee_micros,
            minimal_time=defaults.minimal_time if self.minimal_time is None else self.minimal_time,
            resolution=defaults.resolution if self.resolution is None else self.resolution,
            grace_period=defaults.grace_period if self.grace_period is None else self.grace_period,
            free_seconds=self.free_seconds,
        )
        return RateRow(self.prefix, self.description, pricing, self.window, self.valid_from, self.valid_to)


def _encodable(text: str) -> bool:
    """No lone surrogate (which JSON can carry and no database column can store)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_prefix(prefix: str) -> str:
    if not (prefix.isascii() and prefix.isdigit() and 1 <= len(prefix) <= PREFIX_DIGITS_MAX):
        raise Refusal("prefix_invalid", f"a prefix is 1 to {PREFIX_DIGITS_MAX} digits, not {prefix!r}")
    return prefix


def check_price(name: str, micros: int) -> None:
    if not 0 <= micros <= PRICE_MICROS_MAX:
        raise Refusal("price_invalid", f"{name} must be between 0 and {PRICE_MICROS_MAX // 1_000_000} units")


def check_seconds(name: str, seconds: int) -> None:
    if not 0 <= seconds <= TIME_SECONDS_MAX:
        raise Refusal("seconds_invalid", f"{name} must be between 0 and {TIME_SECONDS_MAX} seconds")


def check_resolution(seconds: int) -> None:
    if not 1 <= seconds <= TIME_SECONDS_MAX:
        raise Refusal("resolution_invalid", f"resolution must be between 1 and {TIME_SECONDS_MAX} seconds")


@dataclass(frozen=True, slots=True)
class Derivation:
    """How a derived tariff prices from its base."""

    multiplier: Decimal = Decimal(1)
    addition_micros: int = 0  # per minute

    def __post_init__(self) -> None:
        if not (self.multiplier.is_finite() and 0 <= self.multiplier <= MULTIPLIER_MAX):
            raise Refusal("multiplier_invalid", f"the multiplier must be between 0 and {MULTIPLIER_MAX}")
        if abs(self.addition_micros) > PRICE_MICROS_MAX:
            raise Refusal("price_invalid", "the addition is too large")

    def apply(self, row: RateRow) -> RateRow:
        factor = Fraction(self.multiplier)
        # A discount (negative addition) larger than a price gives that destination free, never a
        # refusal: the base may gain cheap rows at any time and the derived tariff must still rate.
        price = max(0, _ceil(row.pricing.price_micros * factor) + self.addition_micros)
        pricing = replace(
            row.pricing, price_micros=price, connect_fee_micros=_ceil(row.pricing.connect_fee_micros * factor)
        )
        return replace(row, pricing=pricing)


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def derive(base: Iterable[RateRow], derivation: Derivation, overrides: Iterable[RateRow]) -> Iterator[RateRow]:
    """The rows of a derived tariff: its overrides, and its base's other prefixes re-priced.

    The base's rows come with the base's defaults applied, the overrides with the derived tariff's.
    """
    own = list(overrides)
    overridden = {row.prefix for row in own}
    yield from own
    for row in base:
        if row.prefix not in overridden:
            yield derivation.apply(row)


def derive_in_order(base: Iterable[RateRow], derivation: Derivation, overrides: Iterable[RateRow]) -> Iterator[RateRow]:
    """``derive`` for two streams in prefix order, answered in prefix order and lazily (a page of a derived
    tariff reads only what it shows): an override's prefix replaces every base row of that prefix."""
    base_rows, own_rows = iter(base), iter(overrides)
    row, own = next(base_rows, None), next(own_rows, None)
    while row is not None or own is not None:
        if own is not None and (row is None or own.prefix <= row.prefix):
            prefix = own.prefix
            while own is not None and own.prefix == prefix:
                yield own
                own = next(own_rows, None)
            while row is not None and row.prefix == prefix:
                row = next(base_rows, None)
        elif row is not None:
            yield derivation.apply(row)
            row = next(base_rows, None)


@dataclass(frozen=True, slots=True)
class Tariff:
    """A tariff's own settings; its rows are read apart (there may be a million of them)."""

    id: int
    owner_id: int
    name: str  # "<owner login>:<name>"
    currency: str
    time_zone: str
    defaults: Defaults
    base_tariff_id: int | None = None
    derivation: Derivation | None = None
    revision: int = 1

    @property
    def short_name(self) -> str:
        return self.name.split(":", 1)[1]


TARIFF_NAME_LENGTH_MAX = 60


def tariff_name(owner_login: str, short_name: str) -> str:
    """The name a tariff (or a plan) is known by everywhere: its owner's login, a colon, the name it was given.
    No slash: the name is a segment of the API's and the portal's paths (``/tariffs/{name}``)."""
    if not (
        1 <= len(short_name) <= TARIFF_NAME_LENGTH_MAX
        and short_name.isprintable()
        and ":" not in short_name
        and "/" not in short_name
    ):
        raise Refusal(
            "tariff_name_invalid", f"a tariff name is 1 to {TARIFF_NAME_LENGTH_MAX} characters, no colon or slash"
        )
    if short_name != short_name.strip():
        raise Refusal("tariff_name_invalid", "a tariff name does not start or end with a space")
    return f"{owner_login}:{short_name}"
