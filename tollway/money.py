"""Money: integer micro-units inside, ``Decimal`` at the edges, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from tollway.errors import Refusal

MICROS_PER_UNIT = 1_000_000
MICRO_QUANTUM = Decimal("0.000001")
# Every amount must fit a signed 64-bit column with room for sums of many of them.
AMOUNT_MICROS_MAX = 10**15  # one billion units

# ISO 4217 active codes (2024 list, plus XAU/XAG-style metals left out on purpose).
ISO_4217_CODES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG""".split()
)


def check_currency(code: str) -> str:
    """Return ``code`` if it is an ISO 4217 currency code, else refuse."""
    if code not in ISO_4217_CODES:
        raise Refusal("currency_invalid", f"{code!r} is not an ISO 4217 currency code")
    return code


def to_micros(amount: Decimal | str | int) -> int:
    """Convert an edge amount (``Decimal`` or its text) to micro-units, refusing sub-micro digits."""
    if isinstance(amount, float | bool):  # a float has already lost the amount; a bool is no amount
        raise TypeError(f"money is never a {type(amount).__name__}")
    try:
        value = Decimal(amount)
    except (InvalidOperation, ValueError):
        raise Refusal("amount_invalid", f"{amount!r} is not an amount") from None
    if not value.is_finite():
        raise Refusal("amount_invalid", f"{amount!r} is not an amount")
    # Bound the size first: arithmetic on the unbounded text could round (28 digits) or overflow.
    if abs(value) > AMOUNT_MICROS_MAX // MICROS_PER_UNIT:
        raise Refusal("amount_too_large", f"{amount} is larger than {AMOUNT_MICROS_MAX // MICROS_PER_UNIT}")
    quantized = value.quantize(MICRO_QUANTUM)  # at most 16 digits: exact, and compared exactly
    if quantized != value:
        raise Refusal("amount_too_precise", f"{amount} has more than 6 decimal places")
    return int(quantized * MICROS_PER_UNIT)


def to_decimal(micros: int) -> Decimal:
    """Micro-units to a ``Decimal`` with exactly six places, for display and APIs."""
    return (Decimal(micros) / MICROS_PER_UNIT).quantize(MICRO_QUANTUM)


def format_amount(micros: int, currency: str) -> str:
    return f"{to_decimal(micros)} {currency}"


def convert_micros(micros: int, rate: Decimal) -> int:
    """Convert an amount at ``rate`` (units of target per unit of source), rounding half-even."""
    amount = Decimal(micros)
    with localcontext() as context:  # enough digits for the exact product: round once, half-even
        context.prec = len(amount.as_tuple().digits) + len(rate.as_tuple().digits)
        product = amount * rate
    return int(product.to_integral_value(rounding=ROUND_HALF_EVEN))
