"""Which card pays for a call dialed through an access number: the cards' side of the hook credit control
calls before it runs (tollway/calls/payer.py), as tollway/organizations/payers.py is for extensions.

The switch sends the access number dialed, the caller's number and the PIN's digest (the HTTP interface
hashes the PIN with the installation's key; the PIN itself goes no further). In order:

1. The attempt is counted, per caller number and per access number, in its own transaction *before* the
   PIN is looked at (one atomic statement per counter, as a login's password is: tollway.access.service),
   so guesses sent at once cannot all be checked. While either counter is locked: ``pin_throttled``,
   whatever the PIN, and nothing is looked up.
2. The number must be an access number (``access_number_unknown``); the PIN must name a card the switch
   may serve (``pin_invalid`` otherwise: another tenant's card is no card). A right PIN takes back its
   count (the caller's counter starts afresh).
3. An exclusive number serves only cards of its owner's subtree (``access_number_exclusive``).
4. The card's state: blocked, closed, expired (also an active card past its expiry: it becomes expired)
   are refused as such; a new card is activated by its first use (its face value moves in, as a sale).

The answer is the card's account (a client node): the engine then runs up its reseller chain as for any
account, with the same grants, mid-call control, end and idempotency.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from tollway import metrics
from tollway.access import store as throttles
from tollway.access.audit import audit
from tollway.access.model import Action, Decision, Principal, decide, place_of
from tollway.calls.payer import Payer
from tollway.cards import model, store
from tollway.cards.model import CardState
from tollway.cards.service import activate_found
from tollway.errors import Refusal
from tollway.lines.model import check_e164
from tollway.logs import get_logger
from tollway.store.database import Database
from tollway.tree import store as tree_store

# PIN locks are counted in tollway.metrics.CARD_PIN_LOCKS by counter ("caller", "access_number"; the holder's
# page's "web" and "serial") once the lock is committed; each is also in the audit log (card.pin_lock) and
# in the log (card_pin_locked).
CALLER_KEY_PREFIX = "card-caller:"
log = get_logger(__name__)
ACCESS_KEY_PREFIX = "card-access:"
NUMBER_LENGTH_MAX = 32


@dataclass(frozen=True, slots=True)
class CardCall:
    """A card call's credentials as the switch sends them (the PIN already hashed)."""

    access_number: str
    pin_digest: str | None  # None: no PIN, the caller's number (ANI) must be registered to a card


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


def _keys(caller: str, access_number: str) -> list[tuple[str, int]]:
    """The counters of an attempt, in one order (no deadlock), each with its free attempts."""
    return sorted(
        [
            (CALLER_KEY_PREFIX + caller[:NUMBER_LENGTH_MAX], model.PIN_FAILURES_FREE_PER_CALLER),
            (ACCESS_KEY_PREFIX + access_number[:NUMBER_LENGTH_MAX], model.PIN_FAILURES_FREE_PER_ACCESS_NUMBER),
        ]
    )


def resolve(
    database: Database, *, card: CardCall, caller: str, principal: Principal | None, now: datetime
) -> Payer | Refused:
    try:
        card = replace(card, access_number=check_e164(card.access_number))
    except Refusal:
        return Refused("access_number_unknown")
    if "\x00" in caller:
        return Refused("pin_invalid")
    try:  # one counter per caller however its number is written
        counted = check_e164(caller)
    except Refusal:
        counted = caller
    if card.pin_digest is None:  # not a guess: nothing to count
        return database.run(lambda connection: _resolve(connection, card, counted, principal, now))
    if not count_guess(database, _keys(counted, card.access_number), principal=principal, now=now):
        return Refused("pin_throttled")
    return database.run(lambda connection: _resolve(connection, card, counted, principal, now))


class _Locked(Exception):
    """A counter of the attempt is locked."""


def count_guess(database: Database, keys: list[tuple[str, int]], *, principal: Principal | None, now: datetime) -> bool:
    """Count a PIN attempt on each counter (``keys``: each with its free attempts, in one order), in its own
    transaction, before the PIN is looked at; False (and nothing counted) while one of them is locked."""
    try:
        locked = database.run(lambda connection: _count(connection, keys, principal, now))
    except _Locked:  # rolled back: a locked caller's attempts count on no other counter
        return False
    for key, seconds in locked:
        metrics.CARD_PIN_LOCKS.labels(counter=_counter_kind(key)).inc()
        log.warning("card_pin_locked", counter=key, locked_seconds=seconds)
    return True


def _counter_kind(key: str) -> str:
    if key.startswith(CALLER_KEY_PREFIX):
        return "caller"
    if key.startswith(ACCESS_KEY_PREFIX):
        return "access_number"
    return key.split(":", 1)[0].removeprefix("card-")  # "web", "serial": the holder's page


def _count(
    connection: Connection, keys: list[tuple[str, int]], principal: Principal | None, now: datetime
) -> list[tuple[str, int]]:
    """Count the attempt on each counter; ``_Locked`` (and nothing counted) while one is locked. The
    counters this attempt locked, each with its lock's seconds."""
    locked: list[tuple[str, int]] = []
    throttles.ensure_throttles(connection, [key for key, _ in keys], now=now)
    for key, free in keys:
        failures = throttles.count_attempt(connection, key, now=now)
        if failures is None:
            raise _Locked
        pause = model.pin_lock_seconds(failures, free=free)
        if pause:
            throttles.block_until(connection, key, now + timedelta(seconds=pause), now=now)
            audit(
                connection,
                principal,
                action="card.pin_lock",
                target_type="pin_counter",
                target_id=key,
                node=None,
                after={"failures": failures, "locked_seconds": pause},
            )
            locked.append((key, pause))
    return locked


def _forgive(connection: Connection, caller: str, access_number: str, now: datetime) -> None:
    """The PIN was right: the caller starts afresh; the access number only takes back this attempt."""
    forgive(connection, _keys(caller, access_number), clear=frozenset({CALLER_KEY_PREFIX}), now=now)


def forgive(connection: Connection, keys: list[tuple[str, int]], *, clear: frozenset[str], now: datetime) -> None:
    """A right PIN: the counters whose key starts with one of ``clear`` start afresh, the others only take
    back this attempt (and are unlocked if they fall below their free attempts)."""
    for key, free in keys:
        cleared = key.startswith(tuple(clear))
        throttles.forgive_attempt(connection, key, clear=cleared, now=now)
        if cleared or throttles.failures_of(connection, key) < free:
            throttles.block_until(connection, key, None, now=now)


def _resolve(
    connection: Connection, card_call: CardCall, caller: str, principal: Principal | None, now: datetime
) -> Payer | Refused:
    number = store.find_access_number(connection, card_call.access_number)
    if number is None:
        return Refused("access_number_unknown")
    if card_call.pin_digest is None:
        card_id = store.caller_card(connection, caller)
        card = None if card_id is None else store.find_card_by_id(connection, card_id)
        missing = "pin_required"
    else:
        card = store.find_card_by_pin(connection, card_call.pin_digest)
        missing = "pin_invalid"
    node = None if card is None else tree_store.get_node(connection, card.node_id)
    if card is None or node is None:
        return Refused(missing)
    if principal is not None and decide(principal, Action.CALLS_CONTROL, place_of(node)) is not Decision.ALLOWED:
        return Refused(missing)  # another tenant's card is, to this switch, no card at all
    if card_call.pin_digest is not None:
        _forgive(connection, caller, card_call.access_number, now)
    owner = tree_store.get_node(connection, number.owner_id)
    if owner is None or not model.may_use(number, owner.path, node.path):
        return Refused("access_number_exclusive")
    card = store.find_card(connection, card.owner_id, card.serial_number, lock=True) or card
    if card.state is CardState.NEW:
        reseller = tree_store.get_node(connection, card.owner_id)
        if reseller is None:
            return Refused("pin_invalid")
        activate_found(connection, reseller, [card], now=now)
        card = store.find_card(connection, card.owner_id, card.serial_number) or card
    if card.state is CardState.ACTIVE and card.expires_at is not None and card.expires_at <= now:
        store.set_state(connection, card.id, CardState.EXPIRED, now=now)
        return Refused("card_expired")
    refusals = {
        CardState.BLOCKED: "card_blocked",
        CardState.CLOSED: "card_closed",
        CardState.EXPIRED: "card_expired",
    }
    if card.state in refusals:
        return Refused(refusals[card.state])
    left = store.balance_of(connection, card.node_id)
    if card.state is CardState.DEPLETED and left > 0:  # money came back (a refund): usable again
        store.set_state(connection, card.id, CardState.ACTIVE, now=now)
    elif card.state is CardState.ACTIVE and left <= 0:  # the engine refuses it for funds, as any account
        store.set_state(connection, card.id, CardState.DEPLETED, now=now)
    return Payer(account=node.login, caller=caller)
