"""Payments' rules (pure): states and their transitions, gateways' minor units, top-up offers, refunds.

A payment is one attempt by a node (a client, an agent, a sub-reseller) to pay its owner through one of
the owner's gateways. It moves through explicit states, and only along these arrows:

    created ──► pending ──► confirmed ──► refunded
       │           │  ▲          (a partial refund stays confirmed)
       │           ▼  │
       └──────► failed / canceled

A gateway's word that the money arrived wins over an earlier failure or cancellation (money taken is never
left uncredited), so ``failed`` and ``canceled`` may still become ``confirmed``; nothing else goes back.
Confirming credits the payer's wallet once, by a ledger transfer whose id derives from the gateway's own
payment id, so no retry, redelivery or race can credit twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from tollway.errors import Refusal
from tollway.money import AMOUNT_MICROS_MAX, MICROS_PER_UNIT, format_amount

TOPUP_AMOUNTS_MAX = 12  # fixed amounts a shop offers in one currency
SECRET_HINT_LENGTH = 4  # the characters of a secret shown again: its last four
SECRET_LENGTH_MAX = 255
REFERENCE_LENGTH_MAX = 140  # a payer's bank-transfer reference
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}\Z")
EXTERNAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\Z")  # a gateway's ids: cs_…, pi_…, evt_…
TRANSFER_PREFIX = "pay"
EXTERNAL_ID_IN_TRANSFER_MAX = 72  # a Checkout Session id is 66 characters
REFUND_SUFFIX = ":refund:"


class PaymentState(StrEnum):
    CREATED = "created"  # recorded; the gateway has not been asked yet
    PENDING = "pending"  # the payer was sent to the gateway, or declared a bank transfer
    CONFIRMED = "confirmed"  # the money arrived: the wallet is credited
    FAILED = "failed"  # the gateway refused it
    CANCELED = "canceled"  # abandoned, expired, or a bank transfer the seller rejected
    REFUNDED = "refunded"  # all of it given back


TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    PaymentState.CREATED: frozenset(
        {PaymentState.PENDING, PaymentState.CONFIRMED, PaymentState.FAILED, PaymentState.CANCELED}
    ),
    PaymentState.PENDING: frozenset({PaymentState.CONFIRMED, PaymentState.FAILED, PaymentState.CANCELED}),
    PaymentState.FAILED: frozenset({PaymentState.CONFIRMED}),
    PaymentState.CANCELED: frozenset({PaymentState.CONFIRMED}),
    PaymentState.CONFIRMED: frozenset({PaymentState.REFUNDED}),
    PaymentState.REFUNDED: frozenset(),
}
CREDITED_STATES = frozenset({PaymentState.CONFIRMED, PaymentState.REFUNDED})


class RefundState(StrEnum):
    PENDING = "pending"  # reserved in the ledger, asked of the gateway
    SUCCEEDED = "succeeded"  # given back: the reservation posted, or the reversal recorded
    FAILED = "failed"  # the gateway refused it: the reservation voided
    REFUSED = "refused"  # made at the gateway, but the policy would not take it from the wallet


class RefundOrigin(StrEnum):
    TOLLWAY = "tollway"  # asked from the portal, the API or the command line
    GATEWAY = "gateway"  # made at the gateway (Stripe's dashboard), learned from its webhook


def may_move(current: PaymentState, target: PaymentState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: PaymentState, target: PaymentState) -> None:
    if not may_move(current, target):
        raise Refusal("payment_state_invalid", f"a {current} payment cannot become {target}")


class GatewayKind(StrEnum):
    STRIPE = "stripe"
    BANK_TRANSFER = "bank_transfer"


class ProductKind(StrEnum):
    """What a payment buys. A new kind (calling-card batches, once cards exist) is added here, offered by
    ``tollway.payments.products`` and delivered by ``tollway.payments.service.deliver``."""

    TOPUP = "topup"  # the amount, credited to the wallet
    PLAN = "plan"  # the amount credited, then the plan's first period charged from it


# Stripe's amounts are integers of the currency's smallest unit, which for Stripe is not always ISO 4217's:
# https://docs.stripe.com/currencies#zero-decimal and #three-decimal. Every other currency has two decimals.
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


def minor_unit_exponent(currency: str) -> int:
    """How many decimals one minor unit of ``currency`` has, as Stripe counts them."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in STRIPE_THREE_DECIMAL:
        return 3
    return 2


UNITS_PER_MINOR_UNIT = {0: 1, 2: 100, 3: 1_000}  # minor units in one unit, by exponent


def micros_per_minor_unit(currency: str) -> int:
    return MICROS_PER_UNIT // UNITS_PER_MINOR_UNIT[minor_unit_exponent(currency)]


def micros_from_minor(minor: object, currency: str) -> int:
    """A gateway's integer amount in minor units to micro-units: exact, never rounded."""
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0:
        raise Refusal("amount_invalid", f"{str(minor)[:20]!r} is not an amount in minor units")
    micros = minor * micros_per_minor_unit(currency)
    if micros > AMOUNT_MICROS_MAX:
        raise Refusal("amount_too_large", f"{minor} minor units of {currency} is too large")
    return micros


def minor_from_micros(micros: int, currency: str) -> int:
    """Micro-units to the gateway's minor units; an amount finer than the currency's unit is refused."""
    quantum = micros_per_minor_unit(currency)
    if micros % quantum:
        digits = minor_unit_exponent(currency)
        raise Refusal("amount_too_precise", f"{currency} is paid with {digits} decimals at most")
    return micros // quantum


@dataclass(frozen=True, slots=True)
class TopupOffer:
    """What a shop offers as top-ups in one currency: fixed amounts, and a free amount between two bounds."""

    currency: str
    amounts_micros: tuple[int, ...] = ()
    free_min_micros: int | None = None  # None: no free amount
    free_max_micros: int | None = None

    def __post_init__(self) -> None:
        if len(self.amounts_micros) > TOPUP_AMOUNTS_MAX:
            raise Refusal("offer_invalid", f"a shop offers at most {TOPUP_AMOUNTS_MAX} fixed amounts")
        if len(set(self.amounts_micros)) != len(self.amounts_micros):
            raise Refusal("offer_invalid", "each fixed amount is offered once")
        for amount in self.amounts_micros:
            _check_offered_amount(amount, self.currency)
        if (self.free_min_micros is None) != (self.free_max_micros is None):
            raise Refusal("offer_invalid", "a free amount has both a minimum and a maximum, or neither")
        if self.free_min_micros is not None and self.free_max_micros is not None:
            _check_offered_amount(self.free_min_micros, self.currency)
            _check_offered_amount(self.free_max_micros, self.currency)
            if self.free_min_micros > self.free_max_micros:
                raise Refusal("offer_invalid", "a free amount's minimum is at most its maximum")

    @property
    def free(self) -> bool:
        return self.free_min_micros is not None


def _check_offered_amount(amount_micros: int, currency: str) -> None:
    if not 0 < amount_micros <= AMOUNT_MICROS_MAX:
        raise Refusal("offer_invalid", "an offered amount is positive")
    minor_from_micros(amount_micros, currency)


def check_topup(offer: TopupOffer | None, amount_micros: int) -> None:
    """A top-up is one of the fixed amounts, or a free amount within the bounds."""
    if offer is None:
        raise Refusal("shop_offers_no_topups", "this shop offers no top-ups in this currency")
    if amount_micros in offer.amounts_micros:
        return
    if offer.free_min_micros is not None and offer.free_max_micros is not None:
        if offer.free_min_micros <= amount_micros <= offer.free_max_micros:
            minor_from_micros(amount_micros, offer.currency)
            return
        raise Refusal("amount_out_of_range", "the amount is outside what this shop accepts")
    raise Refusal("amount_not_offered", "this shop offers only its fixed amounts")


def check_request_id(request_id: str) -> str:
    if not REQUEST_ID_PATTERN.match(request_id):
        raise Refusal("request_id_invalid", "a payment's id is 1 to 64 letters, digits and . _ : @ -")
    return request_id


def secret_hint(secret: str) -> str:
    """What is shown of a secret once stored: its last characters, never more."""
    return secret[-SECRET_HINT_LENGTH:]


def check_secret(name: str, secret: str, prefixes: tuple[str, ...]) -> str:
    secret = secret.strip()
    if not secret.startswith(prefixes) or not 8 <= len(secret) <= SECRET_LENGTH_MAX or not secret.isprintable():
        raise Refusal(f"{name}_invalid", f"a {name.replace('_', ' ')} starts with {' or '.join(prefixes)}")
    return secret


def payment_transfer_id(kind: GatewayKind, gateway_id: int, external_id: str) -> str:
    """The credit's transfer id, from the gateway's own id for the payment: one payment, one credit.

    An id too long to leave room for a refund's suffix within a transfer id is replaced by its digest,
    the same every time.
    """
    if not EXTERNAL_ID_PATTERN.match(external_id):
        raise Refusal("gateway_id_invalid", f"{external_id[:40]!r} is not a gateway's payment id")
    if len(external_id) > EXTERNAL_ID_IN_TRANSFER_MAX:
        external_id = "h" + hashlib.sha256(external_id.encode()).hexdigest()[:40]
    return f"{TRANSFER_PREFIX}:{kind}:{gateway_id}:{external_id}"


def refund_transfer_id(payment_transfer: str, key: str) -> str:
    return f"{payment_transfer}{REFUND_SUFFIX}{key}"


# Refund policy. A refund gives back money the payer has not spent: it debits the payer's wallet, whose
# floor holds, and never reaches into a credit line. So it may take at most what is left of the payment
# (paid - refunded so far) and at most the wallet's unspent balance (balance - reservations, not counting
# any credit limit). A refund asked from Tollway is checked (and the amount reserved) before the gateway
# is asked; a refund made at the gateway directly is reversed in the ledger only if the same rule allows it,
# and otherwise recorded as refused with its reason for the seller to settle.


def unspent_micros(*, balance_micros: int, pending_micros: int) -> int:
    """What a refund may take from a wallet: its own money, not its credit line."""
    return max(0, balance_micros - pending_micros)


def refundable_micros(*, paid_micros: int, refunded_micros: int, unspent: int) -> int:
    return max(0, min(paid_micros - refunded_micros, unspent))


def check_refund(*, amount_micros: int, paid_micros: int, refunded_micros: int, unspent: int, currency: str) -> None:
    if amount_micros <= 0:
        raise Refusal("amount_must_be_positive", "a refund gives back a positive amount")
    left = paid_micros - refunded_micros
    if amount_micros > left:
        raise Refusal("refund_exceeds_payment", f"{format_amount(left, currency)} of this payment is left to refund")
    if amount_micros > unspent:
        raise Refusal(
            "refund_exceeds_unspent",
            f"the payer has spent part of it: {format_amount(max(0, unspent), currency)} is unspent, "
            "and a refund gives back only unspent money",
        )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A seller's gateway as stored: its public details, and its secrets sealed (never in the clear here)."""

    id: int
    node_id: int
    kind: GatewayKind
    enabled: bool
    details: dict[str, str] = field(default_factory=dict)
    secret_key_sealed: str | None = None
    secret_key_hint: str | None = None
    webhook_secret_sealed: str | None = None
    webhook_secret_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    node_id: int
    gateway_id: int
    gateway_kind: GatewayKind
    request_id: str
    product: ProductKind
    plan_id: int | None
    amount_micros: int
    currency: str
    state: PaymentState
    external_id: str | None
    external_payment_id: str | None
    checkout_url: str | None
    payer_reference: str | None
    transfer_id: str | None
    refunded_micros: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Refund:
    id: int
    payment_id: int
    key: str
    amount_micros: int
    state: RefundState
    origin: RefundOrigin
    external_id: str | None
    transfer_id: str | None
    reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One line of a payment's history."""

    at: datetime
    from_state: str | None
    to_state: str
    actor: str
    detail: str | None
    gateway_event_id: str | None


# Invoices. Prices in the shop include tax: an invoice shows the tax its total contains, at the seller's rate.
TAX_RATE_PPM_MAX = 1_000_000  # 100 %
INVOICE_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,15}\Z")
INVOICE_NUMBER_DIGITS = 6
TAX_ID_LENGTH_MAX = 64


def tax_included_micros(gross_micros: int, tax_rate_ppm: int) -> int:
    """The tax a tax-inclusive amount contains: gross * rate / (1 + rate), to the micro-unit, half-even."""
    if not 0 <= tax_rate_ppm <= TAX_RATE_PPM_MAX:
        raise Refusal("tax_rate_invalid", "a tax rate is from 0 to 100 %")
    numerator = gross_micros * tax_rate_ppm
    denominator = 1_000_000 + tax_rate_ppm
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 > denominator or (remainder * 2 == denominator and quotient % 2):
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def invoice_label(prefix: str, number: int) -> str:
    return f"{prefix}-{number:0{INVOICE_NUMBER_DIGITS}d}"


@dataclass(frozen=True, slots=True)
class BillingProfile:
    """How a seller appears on its receipts and invoices, set by the seller."""

    legal_name: str
    address: str = ""
    tax_id: str = ""
    tax_rate_ppm: int = 0
    invoice_prefix: str = "INV"

    def __post_init__(self) -> None:
        if not self.legal_name.strip() or len(self.legal_name) > 200 or not self.legal_name.isprintable():
            raise Refusal("legal_name_invalid", "a legal name is 1 to 200 printable characters")
        if len(self.address) > 400 or not self.address.replace("\n", " ").isprintable():
            raise Refusal("address_invalid", "an address is at most 400 printable characters")
        if len(self.tax_id) > TAX_ID_LENGTH_MAX or not self.tax_id.isprintable():
            raise Refusal("tax_id_invalid", f"a tax id is at most {TAX_ID_LENGTH_MAX} printable characters")
        if not 0 <= self.tax_rate_ppm <= TAX_RATE_PPM_MAX:
            raise Refusal("tax_rate_invalid", "a tax rate is from 0 to 100 %")
        if not INVOICE_PREFIX_PATTERN.match(self.invoice_prefix):
            raise Refusal("invoice_prefix_invalid", "an invoice prefix is 1 to 16 letters, digits and / _ -")


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    at: datetime
    description: str
    amount_micros: int  # negative for a refund


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    seller_id: int
    number: int
    label: str
    customer_id: int
    period_start: datetime
    period_end: datetime
    currency: str
    total_micros: int
    tax_micros: int
    content: dict[str, object]  # everything printed, as issued
    issued_at: datetime


def tax_rate_ppm_of(percent: str) -> int:
    """``"20"`` or ``"7.5"`` percent to parts per million, exactly (at most 4 decimals), or a refusal."""
    try:
        value = Decimal(percent)
    except (InvalidOperation, ValueError):
        raise Refusal("tax_rate_invalid", f"{percent[:20]!r} is not a percentage") from None
    ppm = value * 10_000
    if not value.is_finite() or not 0 <= value <= 100 or ppm != ppm.to_integral_value():
        raise Refusal("tax_rate_invalid", "a tax rate is from 0 to 100 %, with at most 4 decimals")
    return int(ppm)
