"""Exchange rates: provider-managed, effective from an instant, exact ``Decimal``s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, insert, select

from tollway.errors import Refusal
from tollway.money import check_currency
from tollway.store.schema import exchange_rates

RATE_DIGITS_MAX = 18
RATES_PAGE_SIZE_MAX = 500


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    base_currency: str
    quote_currency: str
    rate: Decimal  # units of quote per unit of base
    valid_from: datetime


def check_rate(rate: Decimal | str) -> Decimal:
    try:
        value = Decimal(rate)
    except (InvalidOperation, ValueError):
        raise Refusal("rate_invalid", f"{rate!r} is not a rate") from None
    if not value.is_finite() or value <= 0 or len(value.as_tuple().digits) > RATE_DIGITS_MAX:
        raise Refusal("rate_invalid", f"a rate is a positive number of at most {RATE_DIGITS_MAX} digits")
    return value


def record_rate(connection: Connection, rate: ExchangeRate, *, now: datetime) -> None:
    check_currency(rate.base_currency)
    check_currency(rate.quote_currency)
    if rate.base_currency == rate.quote_currency:
        raise Refusal("rate_same_currency", "a rate converts between two different currencies")
    connection.execute(
        insert(exchange_rates).values(
            base_currency=rate.base_currency,
            quote_currency=rate.quote_currency,
            rate=check_rate(rate.rate),
            valid_from=rate.valid_from,
            created_at=now,
        )
    )


def rate_at(connection: Connection, base: str, quote: str, at: datetime) -> Decimal:
    """The rate in force at ``at``: the direct quote if there is one, else the inverse of the reverse one."""
    for b, q, inverse in ((base, quote, False), (quote, base, True)):
        row = connection.execute(
            select(exchange_rates.c.rate)
            .where(
                exchange_rates.c.base_currency == b,
                exchange_rates.c.quote_currency == q,
                exchange_rates.c.valid_from <= at,
            )
            .order_by(exchange_rates.c.valid_from.desc())
            .limit(1)
        ).first()
        if row is not None:
            rate: Decimal = row.rate
            return (Decimal(1) / rate) if inverse else rate
    raise Refusal("exchange_rate_missing", f"no exchange rate from {base} to {quote}")


def list_rates(connection: Connection, *, limit: int = RATES_PAGE_SIZE_MAX) -> list[ExchangeRate]:
    rows = connection.execute(
        select(exchange_rates)
        .order_by(exchange_rates.c.base_currency, exchange_rates.c.quote_currency, exchange_rates.c.valid_from.desc())
        .limit(min(limit, RATES_PAGE_SIZE_MAX))
    )
    return [ExchangeRate(r.base_currency, r.quote_currency, r.rate, r.valid_from) for r in rows]
