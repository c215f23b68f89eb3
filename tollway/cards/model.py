"""Pure rules of calling cards: a batch's terms, PINs, serials, a card's states. No I/O.

A card is a client node of type ``calling_card`` below its reseller, with a wallet like any account; a
row in ``cards`` adds its serial, the digest of its PIN and its state. A card is made ``new`` with an
empty wallet; its face value moves from the reseller (its issuance account, as any top-up of a client)
into its wallet when it is activated (sold, or used for the first time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tollway.errors import Refusal

BATCH_CARDS_MAX = 100_000
PIN_LENGTH_MIN = 10
PIN_LENGTH_MAX = 16
SERIAL_DIGITS = 9  # a serial is its batch's prefix and nine digits: 1..999,999,999 per reseller
SERIAL_NUMBER_MAX = 10**SERIAL_DIGITS - 1
SERIAL_PREFIX_LENGTH_MAX = 12
EXPIRY_DAYS_MAX = 3_650
BATCH_NAME_LENGTH_MAX = 40
FACE_VALUE_MICROS_MAX = 10_000 * 1_000_000  # 10,000.00 a card
SERIAL_RANGE_MAX = BATCH_CARDS_MAX  # cards changed by one block/unblock/activate request
CALLERS_PER_CARD_MAX = 5  # caller numbers (ANI) that use a card without its PIN


class CardState(StrEnum):
    NEW = "new"  # made, not yet sold nor used: no money in it
    ACTIVE = "active"  # its face value is in its wallet
    DEPLETED = "depleted"  # nothing left to call with (a recharge makes it active again)
    EXPIRED = "expired"
    BLOCKED = "blocked"  # by its reseller; unblocked to the state it had (new or active)
    CLOSED = "closed"  # for ever


# The states a card may be moved to from each state by its reseller's actions.
ACTIVATABLE = frozenset({CardState.NEW})
BLOCKABLE = frozenset({CardState.NEW, CardState.ACTIVE, CardState.DEPLETED})
RECHARGEABLE = frozenset({CardState.ACTIVE, CardState.DEPLETED})
CLOSABLE = frozenset({CardState.NEW, CardState.ACTIVE, CardState.DEPLETED, CardState.EXPIRED, CardState.BLOCKED})


@dataclass(frozen=True, slots=True)
class BatchTerms:
    """What a reseller asks for when it makes a batch."""

    name: str  # the batch's idempotency key, chosen by its creator
    count: int
    face_value_micros: int
    tariff: str | None = None
    plan: str | None = None  # the owner's plan each card is given when activated
    profile: str | None = None  # an agent's batch: the profile (type calling_card) its reseller allowed it
    expires_at: datetime | None = None  # a fixed date for every card, or
    expiry_days: int | None = None  # days after each card's activation
    pin_length: int = 12
    serial_prefix: str = ""


def check_terms(terms: BatchTerms) -> None:
    if not 0 < len(terms.name) <= BATCH_NAME_LENGTH_MAX or not all(
        c.isascii() and (c.isalnum() or c in "._-:") for c in terms.name
    ):
        raise Refusal("batch_id_invalid", f"a batch id is 1-{BATCH_NAME_LENGTH_MAX} letters, digits and . _ - :")
    if not 1 <= terms.count <= BATCH_CARDS_MAX:
        raise Refusal("batch_size_invalid", f"a batch has 1 to {BATCH_CARDS_MAX} cards")
    if not 0 < terms.face_value_micros <= FACE_VALUE_MICROS_MAX:
        raise Refusal("amount_invalid", "a card's face value is a positive amount, at most 10000")
    if not PIN_LENGTH_MIN <= terms.pin_length <= PIN_LENGTH_MAX:
        raise Refusal("pin_length_invalid", f"a PIN has {PIN_LENGTH_MIN} to {PIN_LENGTH_MAX} digits")
    if len(terms.serial_prefix) > SERIAL_PREFIX_LENGTH_MAX or not all(
        c.isascii() and c.isalnum() for c in terms.serial_prefix
    ):
        raise Refusal("serial_prefix_invalid", f"a serial prefix is up to {SERIAL_PREFIX_LENGTH_MAX} letters or digits")
    if terms.expires_at is not None and terms.expiry_days is not None:
        raise Refusal("expiry_invalid", "a batch expires on a date or a number of days after activation, not both")
    if terms.expiry_days is not None and not 1 <= terms.expiry_days <= EXPIRY_DAYS_MAX:
        raise Refusal("expiry_invalid", f"a card expires 1 to {EXPIRY_DAYS_MAX} days after its activation")


def check_expiry_ahead(terms: BatchTerms, now: datetime) -> None:
    if terms.expires_at is not None and terms.expires_at <= now:
        raise Refusal("expiry_invalid", "a batch's expiry date is in the future")


def draw_pin(length: int) -> str:
    """A PIN of ``length`` digits from the operating system's cryptographic source."""
    return str(secrets.randbelow(10**length)).zfill(length)


def pin_digest(key: bytes, pin: str) -> str:
    """The keyed hash a PIN is stored and found by (HMAC-SHA256, hex)."""
    return hmac.new(key, pin.encode(), hashlib.sha256).hexdigest()


def serial(prefix: str, number: int) -> str:
    return prefix + str(number).zfill(SERIAL_DIGITS)


def parse_serial(text: str) -> tuple[str, int]:
    """A serial's prefix and number (its last nine digits)."""
    digits = text[-SERIAL_DIGITS:]
    if len(text) < SERIAL_DIGITS or not (digits.isascii() and digits.isdigit()) or len(text) > 30:
        raise Refusal("serial_invalid", f"a serial ends with {SERIAL_DIGITS} digits")
    return text[:-SERIAL_DIGITS], int(digits)


def expiry_on_activation(batch_expires_at: datetime | None, expiry_days: int | None, now: datetime) -> datetime | None:
    if expiry_days is not None:
        return now + timedelta(days=expiry_days)
    return batch_expires_at


def check_range(first: int, last: int) -> None:
    if not 1 <= first <= last <= SERIAL_NUMBER_MAX or last - first + 1 > SERIAL_RANGE_MAX:
        raise Refusal("serial_range_invalid", f"a range is first <= last, at most {SERIAL_RANGE_MAX} cards")


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    node_id: int  # the card's client account
    login: str  # that account's login
    owner_id: int  # the reseller whose card it is
    batch_id: int
    batch: str
    serial_prefix: str
    serial_number: int
    state: CardState
    face_value_micros: int
    currency: str
    batch_expires_at: datetime | None
    expiry_days: int | None
    activated_at: datetime | None
    expires_at: datetime | None
    plan_id: int | None = None  # given to the card when it is activated
    agent_id: int | None = None  # its batch's agent: its face value moved in when it was made

    @property
    def serial(self) -> str:
        return serial(self.serial_prefix, self.serial_number)


@dataclass(frozen=True, slots=True)
class NewCard:
    serial: str
    pin: str  # shown once, never stored


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch: str
    owner: str
    currency: str
    face_value_micros: int
    expires_at: datetime | None
    expiry_days: int | None
    cards: tuple[NewCard, ...]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """A batch as its owner lists it."""

    id: int
    name: str
    count: int
    face_value_micros: int
    currency: str
    tariff: str | None
    plan: str | None
    agent: str | None  # the agent who made and paid for it
    agent_id: int | None
    serial_prefix: str
    first_number: int
    last_number: int
    expires_at: datetime | None
    expiry_days: int | None
    created_at: datetime

    @property
    def first_serial(self) -> str:
        return serial(self.serial_prefix, self.first_number)

    @property
    def last_serial(self) -> str:
        return serial(self.serial_prefix, self.last_number)


def unblocked_state(card: Card) -> CardState:
    """The state a blocked card returns to: active once its value moved in, else new."""
    return CardState.NEW if card.activated_at is None else CardState.ACTIVE


@dataclass(frozen=True, slots=True)
class AccessNumber:
    number: str  # E.164 with its "+"
    owner_id: int
    language: str
    exclusive: bool


def may_use(number: AccessNumber, owner_path: str, card_path: str) -> bool:
    """A card may be used on a number that is not exclusive, or on one whose owner's subtree holds it
    (``owner_path``: the number's owner's path; ``card_path``: the card's node's)."""
    return not number.exclusive or card_path.startswith(owner_path)


# Wrong PINs, counted per caller number and per access number before each check (tollway/cards/payers.py).
PIN_FAILURES_FREE_PER_CALLER = 5
PIN_FAILURES_FREE_PER_ACCESS_NUMBER = 50  # a busy number hears many honest typos
PIN_LOCK_SECONDS_FIRST = 60
PIN_LOCK_SECONDS_MAX = 24 * 3600


def pin_lock_seconds(failures: int, *, free: int) -> int:
    """Doubling locks after the free attempts, capped: 1 minute, 2, 4 ... a day."""
    if failures < free:
        return 0
    return int(min(PIN_LOCK_SECONDS_FIRST * 2 ** (failures - free), PIN_LOCK_SECONDS_MAX))
