"""A card's holder looks at the card with its PIN (the portal's public page): balance, state, expiry, calls.

No login: the serial (optional) and the PIN are the holder's credentials, checked as a switch's are
(tollway/cards/payers.py): every attempt is counted before the PIN is looked at, on the same counters
(``login_throttles``), per address the page was asked from (``card-web:<address>``) and, when a serial is
given, per serial (``card-serial:<serial>``), so that guesses spread over many addresses at one card are
locked out too. While a counter is locked every attempt is refused ``pin_throttled``, the right PIN too.
A wrong PIN, a PIN of a card of another brand, a serial that is not the PIN's card and an unknown serial
are one and the same refusal (``card_not_recognized``): the page tells nothing of which was wrong.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from tollway.calls import service as calls
from tollway.calls.service import CallFilter
from tollway.cards import model, store
from tollway.cards.model import Card, CardState
from tollway.cards.payers import count_guess, forgive
from tollway.errors import Refusal
from tollway.store.database import Database
from tollway.tree import store as tree_store

WEB_KEY_PREFIX = "card-web:"
SERIAL_KEY_PREFIX = "card-serial:"
CALLS_SHOWN = 50  # the card's latest calls on the holder's page
CALLS_PAGE = 500
ADDRESS_LENGTH_MAX = 64


@dataclass(frozen=True, slots=True)
class HolderView:
    card: Card
    balance_micros: int
    calls: list[dict[str, Any]]  # the card's latest calls, newest first, each with its charge to the card


def _digits(text: str) -> str:
    """A PIN or serial as typed on a phone or a card: spaces and dashes between the groups are dropped."""
    return "".join(c for c in text if c not in " -")


def holder_card(
    database: Database,
    *,
    pin_key: bytes,
    pin: str,
    serial: str,
    address: str | None,
    brand_node_id: int,
    now: datetime,
) -> HolderView:
    """The card of ``pin`` (whose serial is ``serial``, if given) sold under the brand of ``brand_node_id``
    (its subtree's cards), or ``card_not_recognized``; ``pin_throttled`` while its counters are locked."""
    pin, serial = _digits(pin), _digits(serial).upper()
    keys = [(WEB_KEY_PREFIX + (address or "unknown")[:ADDRESS_LENGTH_MAX], model.PIN_FAILURES_FREE_PER_CALLER)]
    if serial:
        keys.append((SERIAL_KEY_PREFIX + serial[:32], model.PIN_FAILURES_FREE_PER_CALLER))
    keys.sort()
    if not count_guess(database, keys, principal=None, now=now):
        raise Refusal("pin_throttled", "too many wrong PINs: try again later")
    wellformed = model.PIN_LENGTH_MIN <= len(pin) <= model.PIN_LENGTH_MAX and pin.isascii() and pin.isdigit()
    digest = model.pin_digest(pin_key, pin) if wellformed else None

    def use_case(connection: Connection) -> tuple[Card, int] | None:
        card = None if digest is None else store.find_card_by_pin(connection, digest)
        node = None if card is None else tree_store.get_node(connection, card.node_id)
        brand = tree_store.get_node(connection, brand_node_id)
        if card is None or node is None or brand is None or not node.path.startswith(brand.path):
            return None
        if serial and card.serial.upper() != serial:
            return None
        forgive(connection, keys, clear=frozenset({WEB_KEY_PREFIX, SERIAL_KEY_PREFIX}), now=now)
        return card, store.balance_of(connection, card.node_id)

    found = database.run(use_case)
    if found is None:
        raise Refusal("card_not_recognized", "no card has this serial and PIN")
    card, balance = found
    if card.state is CardState.ACTIVE and card.expires_at is not None and card.expires_at <= now:
        card = _expired(card)
    latest: deque[dict[str, Any]] = deque(maxlen=CALLS_SHOWN)
    after: int | None = 0
    while after is not None:  # by ascending id: the last page holds the latest
        listed, after = calls.list_calls(
            database, principal=None, where=CallFilter(account=card.login), after_id=after, limit=CALLS_PAGE
        )
        latest.extend(listed)
    shown = [
        view | {"charge": _charge(view, card.login), "started": datetime.fromisoformat(view["created_at"])}
        for view in reversed(latest)
    ]
    return HolderView(card, balance, shown)


def _expired(card: Card) -> Card:
    """An active card past its expiry, as its next call will find it."""
    return replace(card, state=CardState.EXPIRED)


def _charge(view: dict[str, Any], login: str) -> dict[str, Any] | None:
    found = [line for line in view.get("charges") or [] if line["account"] == login]
    return found[0] if found else None
