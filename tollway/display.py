"""Amounts, numbers and instants as a person reads them, in their locale (Babel): portal pages and emails.

Inside, money is micro-units; shown to a person it is rounded to the currency's own precision (two decimals
for EUR and USD, none for JPY, three for KWD) and written the locale's way: '€12,345.67' in English,
'12.345,67 €' in Spanish, '12 345,67 €' in Polish. Which way a value is rounded is a choice per value:

- what an account *has* (a balance, available credit, a level) is rounded down (``Rounding.DOWN``): a
  person is never shown money they do not have, and a level just below a threshold never reads as equal
  to it when the threshold is rounded up (``Rounding.UP``);
- every other amount (a call's cost, a payment) is rounded half-up (``Rounding.NEAREST``), as on a bill.

The internal precision stays: CSV exports and the API give all six decimals.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal, get_currency_precision

from tollway.money import to_decimal

FALLBACK_LANGUAGE = "en"


class Rounding(Enum):
    DOWN = ROUND_FLOOR  # what an account has: never more than it has
    UP = ROUND_CEILING  # a threshold: never less than it is
    NEAREST = ROUND_HALF_UP  # costs and payments, as on a bill


def language_candidates(language: str) -> list[str]:
    """The languages to try, most specific first: 'pt_BR' gives pt_BR, pt, en."""
    normalized = language.replace("-", "_")
    base = normalized.split("_", 1)[0].lower()
    found: list[str] = []
    for candidate in (normalized, base, FALLBACK_LANGUAGE):
        if candidate and candidate not in found:
            found.append(candidate)
    return found


@functools.lru_cache(maxsize=256)
def locale_for(language: str) -> Locale:
    """The Babel locale: the account's own ('pt_BR' formats as Brazil does), else its base language, else English."""
    for candidate in language_candidates(language):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(FALLBACK_LANGUAGE)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def currency_decimals(currency: str) -> int:
    return int(get_currency_precision(currency))


def rounded(micros: int, currency: str, rounding: Rounding = Rounding.NEAREST) -> Decimal:
    """The amount at the currency's precision, rounded as ``rounding`` says."""
    quantum = Decimal(1).scaleb(-currency_decimals(currency))
    return to_decimal(micros).quantize(quantum, rounding=rounding.value)


def format_money(micros: int, currency: str, language: str, rounding: Rounding = Rounding.NEAREST) -> str:
    """'€12,345.67' (en), '12.345,67 €' (es): the currency's precision, the locale's way."""
    return format_currency(rounded(micros, currency, rounding), currency, locale=locale_for(language))


def plain_amount(micros: int, currency: str, rounding: Rounding = Rounding.NEAREST) -> str:
    """'24.60 USD', '1500 JPY': the currency's precision, written the same in every language (API messages)."""
    return f"{rounded(micros, currency, rounding)} {currency}"


def format_price(micros: int, currency: str, language: str) -> str:
    """A price per minute with every digit it has, at least the currency's ('$0.027688', '$0.01'): a rate sheet's
    price is never rounded for show."""
    value = to_decimal(micros).normalize()
    exponent = value.as_tuple().exponent
    decimals = currency_decimals(currency)
    if isinstance(exponent, int) and exponent > -decimals:
        value = value.quantize(Decimal(1).scaleb(-decimals))
    return format_currency(value, currency, locale=locale_for(language), decimal_quantization=False)


def format_weekday(day: int, language: str) -> str:
    """A day of the week, 0 for Monday, abbreviated the locale's way: 'Mon', 'lun', 'pon.'."""
    return str(locale_for(language).days["format"]["abbreviated"][day])


def format_number(value: int | Decimal, language: str) -> str:
    return format_decimal(value, locale=locale_for(language))


def format_rate(value: Decimal, language: str) -> str:
    """An exchange rate with every digit it has ('4,0512' in Polish): a rate is never rounded for show."""
    return format_decimal(value, locale=locale_for(language), decimal_quantization=False)


def format_instant(instant: datetime, language: str, time_zone: str, *, width: str = "medium") -> str:
    """A date and time in the person's time zone, written the locale's way."""
    return format_datetime(instant, width, tzinfo=_zone(time_zone), locale=locale_for(language))


def format_day(instant: datetime, language: str, time_zone: str, *, width: str = "medium") -> str:
    return format_date(instant.astimezone(_zone(time_zone)).date(), width, locale=locale_for(language))


def format_month(day: date, language: str) -> str:
    """The month a day is in, standing alone: 'December 2026', 'grudzień 2026'."""
    return format_date(day, "LLLL y", locale=locale_for(language))


def format_clock(instant: datetime, language: str, time_zone: str) -> str:
    return format_time(instant, "short", tzinfo=_zone(time_zone), locale=locale_for(language))


def format_duration(seconds: int) -> str:
    """'1:02:03' or '2:03': the same in every language."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
