"""Real-time credit control: authorize, answer, update and end calls; the keeper's extensions and sweeps.

Every level of the chain (the client, then each reseller up to the provider's child) pays its owner
for the call at its own tariff, from its own wallet. At authorization every level's funds are checked
and a first grant of talk time is reserved at every level at once, as pending ledger transfers from
the level's wallet to its owner's revenue account. Before a grant runs out it is extended, again at
every level, one quota at a time, so a shared reseller balance is never tied up by whole calls. At the
end the exact cost is posted at every level and the rest of the reservation released, in one linked
ledger batch; a call that went on past its grant is charged all the same, and the overshoot recorded.

Each request is one transaction; the switch's call id makes every request idempotent: a repeat gets
the first answer and changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tollway import metrics
from tollway.access import credentials
from tollway.access import service as access
from tollway.access import store as access_store
from tollway.access.audit import audit
from tollway.access.model import (
    Action,
    Decision,
    Forbidden,
    Principal,
    Role,
    Scope,
    authorize,
    decide,
    place_of,
    scope_of,
    sees_charge,
)
from tollway.balances.service import account_id
from tollway.calls import cached, store
from tollway.calls.batching import GroupCommit, Item
from tollway.calls.model import (
    CALL_SECONDS_MAX,
    ChargedDuration,
    InsufficientFunds,
    LevelFunds,
    believable_elapsed,
    charged_duration,
    next_grant,
)
from tollway.calls.model import authorize as longest_call
from tollway.calls.notify import notifier_for
from tollway.calls.payer import Floor
from tollway.calls.store import CallRecord, ChargeLine
from tollway.cards import payers as card_payers
from tollway.cards.payers import CardCall
from tollway.clock import utc_now
from tollway.config import Settings
from tollway.csvsafe import safe_row
from tollway.errors import NUL, NotFound, Refusal, TollwayError, present, require
from tollway.ledger import store as ledger_store
from tollway.ledger.model import (
    Account,
    AccountPurpose,
    Applied,
    Phase,
    TransferKind,
    TransferRequest,
    apply_batch,
)
from tollway.logs import get_logger
from tollway.money import to_decimal
from tollway.organizations import payers
from tollway.rating.chain import NoRate
from tollway.rating.cost import billed_seconds
from tollway.rating.loading import TABLES, NoTariff, TableCache
from tollway.rating.plans import split_cost
from tollway.store.database import Database, identity
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Node, NodeKind, Status

log = get_logger(__name__)

CALL_ID_LENGTH_MAX = 128
# A SIP Call-ID: visible ASCII without spaces; "/", "?", "#" and "%" are left out because the id travels
# in URL paths (a switch whose Call-IDs carry them sends a hash of the Call-ID instead).
CALL_ID_PATTERN = re.compile(r"^[^\x00-\x20\x7f-\U0010ffff/?#%]{1,128}$")
UNLIMITED_MICROS = 10**15  # what a wallet without a floor can pay for any call

# Why a call was refused or ended: the machine-readable reason, the SIP code a switch should answer.
SIP_CODES: dict[str, int] = {
    "account_unknown": 404,
    "account_not_rated": 403,
    "account_suspended": 403,
    "account_closed": 403,
    "concurrent_calls_limit": 403,
    "number_invalid": 484,
    "no_tariff": 404,
    "no_rate": 404,
    "insufficient_funds": 402,
    "spending_cap_reached": 402,
    # A card call (tollway/cards/payers.py), refused before any account pays.
    "access_number_unknown": 404,
    "access_number_exclusive": 403,
    "pin_invalid": 403,
    "pin_required": 403,
    "pin_throttled": 403,
    "card_blocked": 403,
    "card_closed": 403,
    "card_expired": 403,
}
MESSAGES: dict[str, str] = {
    "account_unknown": "there is no account {account}",
    "account_not_rated": "{level} is not an account that makes calls",
    "account_suspended": "{level} is suspended",
    "account_closed": "{level} is closed",
    "concurrent_calls_limit": "{level} has as many calls as it may have at once",
    "number_invalid": "{callee} is not a telephone number",
    "no_tariff": "{level} has no tariff",
    "no_rate": "the tariff of {level} has no rate for {callee}",
    "insufficient_funds": "{level} cannot pay for a call to {callee}",
    "spending_cap_reached": "{level} is spent for a call to {callee}",
    "access_number_unknown": "the number dialed is not an access number",
    "access_number_exclusive": "this access number serves another reseller's cards",
    "pin_invalid": "there is no card with this PIN",
    "pin_required": "the caller's number is registered to no card: ask for the PIN",
    "pin_throttled": "too many wrong PINs from this caller or on this number: try again later",
    "card_blocked": "the card is blocked",
    "card_closed": "the card is closed",
    "card_expired": "the card has expired",
}


@dataclass(frozen=True, slots=True)
class CallSettings:
    grant_seconds: int = 600  # the quota reserved at a time, at every level
    extend_lead_seconds: int = 60  # a grant is extended when less than this is left of it
    stale_margin_seconds: int = 30  # how long past its grant a silent call is left before it is closed
    ring_timeout_seconds: int = 180  # how long an authorized call may ring before it is closed unanswered
    max_call_seconds: int = CALL_SECONDS_MAX
    duration_margin_seconds: int = 5  # a reported duration may pass its grant, or the clock, by this much

    @classmethod
    def of(cls, settings: Settings) -> CallSettings:
        """From the configuration; the lead is at most half a grant, so a grant is extended in time."""
        return cls(
            grant_seconds=settings.call_grant_seconds,
            extend_lead_seconds=min(settings.call_extend_lead_seconds, settings.call_grant_seconds // 2),
            stale_margin_seconds=settings.call_stale_margin_seconds,
            ring_timeout_seconds=settings.call_ring_timeout_seconds,
            max_call_seconds=settings.call_max_seconds,
            duration_margin_seconds=settings.call_duration_margin_seconds,
        )


DEFAULT_SETTINGS = CallSettings()


@dataclass(frozen=True, slots=True)
class CallRequest:
    call_id: str
    account: str
    caller: str
    callee: str
    answered: bool = False
    extension: str | None = None  # instead of an account: the SIP extension that placed it, username@domain
    card: CardCall | None = None  # instead of an account: a calling card's PIN on an access number


class CallUnknown(NotFound):
    def __init__(self, call_id: str) -> None:
        super().__init__("call", call_id)


class _Refused(Exception):
    """A call refused part-way through authorization: recorded, then answered."""

    def __init__(self, reason: str, level: str | None) -> None:
        self.reason = reason
        self.level = level


# -- answers ------------------------------------------------------------------------------------


def _dumps(answer: dict[str, Any]) -> str:
    return json.dumps(answer, separators=(",", ":"), sort_keys=True)


def refusal_answer(call_id: str, reason: str, level: str | None, request: CallRequest) -> dict[str, Any]:
    message = MESSAGES[reason].format(account=request.account, level=level, callee=request.callee)
    return {
        "call_id": call_id,
        "status": "refused",
        "reason": reason,
        "level": level,
        "sip_code": SIP_CODES[reason],
        "message": message,
    }


def call_view(call: CallRecord, lines: Sequence[ChargeLine] = ()) -> dict[str, Any]:
    """A call as the API shows it: its state, grant, and at the end its charge lines."""
    view: dict[str, Any] = {
        "call_id": call.call_id,
        "reference": f"call:{call.id}",  # the reference of its ledger transfers
        "account": call.account,
        "caller": call.caller,
        "callee": call.callee,
        "number": call.number,
        "status": call.state,
        "max_seconds": call.max_seconds,
        "grant_seconds": call.grant_seconds,
        "final": call.final,
        "limited_by": call.limited_by,
        "reason": call.reason,
        "level": call.level,
        "created_at": call.created_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "grant_expires_at": call.grant_expires_at.isoformat() if call.grant_expires_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": call.duration_seconds,
        "reported_duration_seconds": call.reported_duration_seconds,
        "overshoot_seconds": call.overshoot_seconds,
        "overshoot_reason": call.overshoot_reason,
        "end_reason": call.end_reason,
        "disconnect": call.disconnect_state,
    }
    if lines:
        view["charges"] = [_line_view(line, ended=call.state == "ended") for line in lines]
    return view


def seen_lines(connection: Connection, principal: Principal | None, lines: Sequence[ChargeLine]) -> list[ChargeLine]:
    """The charge lines of a call that ``principal`` may see (``tollway.access.model.sees_charge``): a customer
    its own, a reseller its own and those below it, the provider all. Every view of a call's charges goes
    through here (or through ``_seen`` with the payers of a whole page)."""
    if principal is None:
        return list(lines)
    return _seen(principal, lines, cached.nodes_by_id(connection, (line.node_id for line in lines)))


def _seen(principal: Principal | None, lines: Sequence[ChargeLine], payers: dict[int, Node]) -> list[ChargeLine]:
    return [
        line
        for line in lines
        if principal is None or (line.node_id in payers and sees_charge(principal, place_of(payers[line.node_id])))
    ]


def shown_call(
    connection: Connection, principal: Principal | None, call: CallRecord, lines: Sequence[ChargeLine]
) -> dict[str, Any]:
    """A call as ``principal`` may see it: its record with the charge lines it may see."""
    return call_view(call, seen_lines(connection, principal, lines))


def _line_view(line: ChargeLine, *, ended: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "level": line.position,
        "account": line.account,
        "tariff": line.tariff,
        "currency": line.currency,
        "prefix": line.prefix,
        "description": line.description,
        "price_micros": line.pricing.price_micros,
        "connect_fee_micros": line.pricing.connect_fee_micros,
    }
    if ended:
        view |= {
            "billed_seconds": line.billed_seconds,
            "plan_seconds": line.plan_seconds,
            "amount_micros": line.amount_micros,
            "overshoot_micros": line.overshoot_micros,
        }
    else:
        view |= {"reserved_micros": line.reserved_micros, "plan_seconds_reserved": line.plan_seconds_reserved}
    return view


# -- what authorization reads on every call, cached per process ----------------------------------

LEVELS = cached.LEVELS  # tariffs, valid while the static version holds (tollway.store.static)
ACCOUNT_IDS_MAX = 100_000


class AccountIds:
    """Ledger account ids by (database, node, purpose, currency): they never change once opened (and committed)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, int, str, str], int] = {}
        self._lock = threading.Lock()

    def id(self, connection: Connection, node: Node, purpose: AccountPurpose, currency: str) -> int:
        key = (identity(connection), node.id, str(purpose), currency)
        with self._lock:
            found = self._ids.get(key)
        if found is not None:
            return found
        found = ledger_store.find_account_id(connection, node_id=node.id, purpose=purpose, currency=currency)
        if found is None:
            # Opened now, in this transaction: not remembered, since a rollback (a repeat's, a retry's) undoes it.
            return account_id(connection, node, purpose, currency)
        with self._lock:
            if len(self._ids) > ACCOUNT_IDS_MAX:
                self._ids.clear()
            self._ids[key] = found
        return found


ACCOUNTS = AccountIds()
# Reported durations not believed are counted in tollway.metrics.CALL_OVERSHOOTS by reason
# (tollway.calls.model.Overshoot); each is also on its call's record (overshoot_reason) and in the log.


# -- authorize ----------------------------------------------------------------------------------


def authorize_call(
    database: Database,
    request: CallRequest,
    *,
    principal: Principal | None = None,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    tables: TableCache = TABLES,
) -> dict[str, Any]:
    """Authorize a call and reserve its first grant at every level, or refuse it naming why and where.

    Decided in a batch with the other authorizations this process receives meanwhile (``decide_batch``):
    one transaction, the accounts of all of them locked once.
    """
    check_call_id(request.call_id)
    instant = now or utc_now()
    floors: tuple[Floor, ...] = ()
    if request.extension is not None:
        payer = payers.resolve(
            database, extension=request.extension, callee=request.callee, principal=principal, now=instant
        )
        if payer.internal:
            return internal_answer(request.call_id)
        request = replace(request, account=payer.account, caller=request.caller or payer.caller)
        floors = payer.floors
    card_refusal: str | None = None
    if request.card is not None:
        card_payer = card_payers.resolve(
            database, card=request.card, caller=request.caller, principal=principal, now=instant
        )
        if isinstance(card_payer, card_payers.Refused):
            card_refusal = card_payer.reason
        else:
            request = replace(request, account=card_payer.account)
    return _batches(database).submit(
        Authorization(request, principal, settings, now, tables, floors, card_refusal=card_refusal)
    )


def record_card_refusal(
    database: Database,
    request: CallRequest,
    reason: str,
    *,
    principal: Principal | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A card call refused before the engine (its access number, PIN or card), recorded and answered as
    ``authorize_call`` records one: for a switch that resolved the card itself (RADIUS's second stage,
    tollway/radius/service.py). A call id seen before answers its first answer."""
    check_call_id(request.call_id)
    return _batches(database).submit(
        Authorization(request, principal, DEFAULT_SETTINGS, now, TABLES, card_refusal=reason)
    )


def internal_answer(call_id: str) -> dict[str, Any]:
    """A call between two extensions of one organization: free, not recorded, not sent up the chain."""
    return {
        "call_id": call_id,
        "status": "authorized",
        "internal": True,
        "max_seconds": CALL_SECONDS_MAX,
        "grant_seconds": CALL_SECONDS_MAX,
        "final": True,
        "limited_by": None,
    }


def check_call_id(call_id: str) -> str:
    if not CALL_ID_PATTERN.match(call_id):
        raise Refusal(
            "call_id_invalid", f"a call id is 1 to {CALL_ID_LENGTH_MAX} visible ASCII characters, without / ? # %"
        )
    return call_id


def tenant_of(connection: Connection, principal: Principal | None) -> int:
    """Whose call ids a principal uses: its own node's (a switch's, an admin's); the command line is the provider.

    A call id names a call within one tenant only: another tenant's switch may use the same id for a call
    of its own and learns nothing from it, and no tenant can claim ids before another does.
    """
    if principal is not None:
        return principal.place.node_id
    return present(tree_store.find_provider(connection), "the provider").id


def _replay(
    connection: Connection, request: CallRequest, principal: Principal | None, tenant_id: int
) -> dict[str, Any]:
    call = store.find_call(connection, request.call_id, tenant_id=tenant_id)
    if call is None:
        raise Refusal("call_id_taken", f"call {request.call_id} is being authorized; retry")
    if principal is not None:
        node = tree_store.get_node(connection, call.node_id) if call.node_id is not None else None
        if node is None or call.account != request.account:
            raise Refusal("call_id_taken", f"call id {request.call_id} was used for another call")
        authorize(principal, Action.CALLS_CONTROL, node)
    answer: dict[str, Any] = json.loads(call.authorize_answer)
    return answer


@dataclass(frozen=True, slots=True)
class Authorization:
    """One authorize request on its way into a batch, with what its own thread resolved before it."""

    request: CallRequest
    principal: Principal | None
    settings: CallSettings
    now: datetime | None  # None: the moment its batch is decided
    tables: TableCache
    floors: tuple[Floor, ...] = ()
    card_refusal: str | None = None  # a card call refused before any account (its number, PIN or card)


_BATCHES: weakref.WeakKeyDictionary[Database, dict[Callable[..., Any], GroupCommit[Any, dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_BATCHES_LOCK = threading.Lock()


def _group_commit(
    database: Database, decide: Callable[[Database, Sequence[Item]], Any]
) -> GroupCommit[Item, dict[str, Any]]:
    """This process's group commit into ``database`` of the requests ``decide`` decides (authorizations, ends)."""
    with _BATCHES_LOCK:
        of_database = _BATCHES.setdefault(database, {})
        if decide not in of_database:
            of_database[decide] = GroupCommit(partial(decide, database))
        return of_database[decide]


def _batches(database: Database) -> GroupCommit[Authorization, dict[str, Any]]:
    return _group_commit(database, decide_batch)


def authorization_batches(database: Database) -> tuple[int, int]:
    """(batches, authorizations) this process has decided into ``database``: their ratio is the mean batch."""
    batches = _batches(database)
    return batches.batches, batches.items


def decide_batch(database: Database, items: Sequence[Authorization]) -> list[dict[str, Any] | BaseException]:
    """Decide a batch in one transaction; if it fails as a whole (a call id already taken, a deadlock
    retried too often), decide each of its authorizations alone, so that one cannot fail the others."""
    if len(items) > 1:
        try:
            return list(database.run(lambda connection: _authorize_batch(connection, items)))
        except Exception as error:  # decided again one by one, where each gets its own outcome
            log.info("authorization_batch_split", authorizations=len(items), error=type(error).__name__)
    return [_decide_alone(database, item) for item in items]


def _decide_alone(database: Database, item: Authorization) -> dict[str, Any] | BaseException:
    try:
        (outcome,) = database.run(lambda connection: _authorize_batch(connection, [item]))
        return outcome
    except IntegrityError:
        # The call id is taken in this tenant: a repeat (a switch's retry), or the same call authorized at the
        # same moment by another process. Answer the first answer.
        try:
            with database.reading() as connection:
                return _replay(connection, item.request, item.principal, tenant_of(connection, item.principal))
        except Exception as error:  # raised in the request's own thread
            return error
    except Exception as error:  # raised in the request's own thread
        return error


@dataclass(slots=True)
class _Decided:
    """One authorization of a batch once decided: its call's row, and if authorized its reservations."""

    item: Authorization
    answer: dict[str, Any]
    call: dict[str, Any]  # the calls row, but its id
    lines: list[ChargeLine] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)  # each line's reservation, in micro-units (0: none)


def _authorize_batch(connection: Connection, items: Sequence[Authorization]) -> list[dict[str, Any] | BaseException]:
    """Decide authorizations in one transaction, in order, as if one after the other.

    The accounts of all of them are locked at once, in the ledger's one order; each is then decided
    against the balances the ones before it left (``state``); their calls, reservations and charge lines
    are written with one statement each. A repeated call id fails the insert, and the whole batch with it.
    """
    moment = utc_now()
    outcomes: list[dict[str, Any] | BaseException | None] = [None] * len(items)
    planned: list[tuple[int, _Plan]] = []
    decided: list[_Decided] = []
    for index, item in enumerate(items):
        try:
            plan = _plan(connection, item, item.now or moment)
        except _Refusing as refusing:
            decided.append(refusing.decided)
            continue
        except TollwayError as error:  # this request's own error (a principal not allowed): its thread raises it
            outcomes[index] = error
            continue
        planned.append((index, plan))
    accounts = ledger_store.lock_accounts(
        connection, {account for _, plan in planned for account in _account_ids(plan.lines)}
    )
    state = dict(accounts)
    active: list[Node] = []  # the accounts of the calls authorized so far in this batch, not yet written
    for _, plan in planned:
        try:
            decided.append(_decide(connection, plan, state, active))
        except _Refused as refused:
            decided.append(_refusal(plan.item, plan.base, refused.reason, refused.level))
    order = {id(item): index for index, item in enumerate(items)}
    decided.sort(key=lambda one: order[id(one.item)])
    pks = store.insert_calls(connection, [one.call for one in decided])
    reservations = [
        (one.item.now or moment, _reservation_requests(pk, one.lines, one.amounts))
        for pk, one in zip(pks, decided, strict=True)
    ]
    locked = accounts
    for at, requests in _by_moment(reservations):  # one ledger batch in all, unless callers gave moments
        locked = locked | ledger_store.execute(connection, requests, now=at, locked=locked).accounts
    store.insert_lines_of(connection, [(pk, one.lines) for pk, one in zip(pks, decided, strict=True) if one.lines])
    for one in decided:
        outcomes[order[id(one.item)]] = one.answer
    answered = [outcome for outcome in outcomes if outcome is not None]
    require(len(answered) == len(items), "an authorization of a batch was left without an outcome")
    return answered


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an authorization needs before any lock: its account, the chain, the number, a line per level."""

    item: Authorization
    base: dict[str, Any]  # the calls row's columns known before the decision
    node: Node
    nodes: Sequence[Node]
    number: str
    allowance_plan: bool  # whether the client's plan (if it has one) covers the number
    lines: list[ChargeLine]


class _Refusing(Exception):
    """A refusal found while planning, with the call's row already made."""

    def __init__(self, decided: _Decided) -> None:
        super().__init__(decided.answer.get("reason"))
        self.decided = decided


def _plan(connection: Connection, item: Authorization, now: datetime) -> _Plan:
    """Everything an authorization reads that needs no lock: from the per-process caches, once warm."""
    request, principal = item.request, item.principal
    # A repeat (a switch's retry) is not looked up first: it is rare, and the call's insert finds it (unique
    # per tenant), which rolls the batch back and answers the first answer (``_decide_alone``).
    tenant_id = tenant_of(connection, principal)
    switch_id = None
    if principal is not None and principal.api_key_id is not None:
        switch = cached.switch_for_key(connection, principal.api_key_id)
        switch_id = switch[0] if switch else None
    base: dict[str, Any] = {
        "call_id": request.call_id,
        "tenant_id": tenant_id,
        "switch_id": switch_id,
        "account": request.account[:63],
        "caller": request.caller[:64],
        "callee": request.callee[:64],
        "created_at": now,
        "node_id": None,
        "path": None,
    }
    if item.card_refusal is not None:  # before any account: a card call's access number, PIN or card
        raise _Refusing(_refusal(item, base, item.card_refusal, None))
    node = _visible_account(connection, request.account, principal)
    if node is None:
        raise _Refusing(_refusal(item, base, "account_unknown", None))
    base |= {"node_id": node.id, "path": node.path}
    try:
        return _plan_known(connection, item, node, base, now)
    except _Refused as refused:
        raise _Refusing(_refusal(item, base, refused.reason, refused.level)) from None


def _refusal(item: Authorization, base: dict[str, Any], reason: str, level: str | None) -> _Decided:
    answer = refusal_answer(item.request.call_id, reason, level, item.request)
    call = base | _CALL_DEFAULTS | {"state": "refused", "reason": reason, "level": level}
    return _Decided(item, answer, call | {"authorize_answer": _dumps(answer)})


# Every calls row an authorization writes has the same columns, so that a batch's rows go in one statement.
_CALL_DEFAULTS: dict[str, Any] = {
    "number": None,
    "reason": None,
    "level": None,
    "limited_by": None,
    "max_seconds": 0,
    "grant_seconds": 0,
    "final": False,
    "answered_at": None,
    "grant_expires_at": None,
}


def _visible_account(connection: Connection, login: str, principal: Principal | None) -> Node | None:
    node = cached.account(connection, login)
    if node is None:
        return None
    try:
        authorize(principal, Action.CALLS_CONTROL, node)
    except NotFound:
        return None  # another tenant's account is, to this switch, no account at all
    return node


def _plan_known(connection: Connection, item: Authorization, node: Node, base: dict[str, Any], now: datetime) -> _Plan:
    if node.position.kind is not NodeKind.CLIENT:
        raise _Refused("account_not_rated", node.login)  # resellers, agents and the provider make no calls
    nodes = cached.chain(connection, node)  # the account, then its owners up to the provider
    for member in nodes:
        if member.status is not Status.ACTIVE:
            raise _Refused(f"account_{member.status}", member.login)
    try:
        chain = cached.rated(connection, node, nodes, item.tables)
    except NoTariff as missing:
        raise _Refused("no_tariff", missing.account) from None
    try:
        number = chain.dial_plan.normalize(item.request.callee)
    except Refusal:
        raise _Refused("number_invalid", None) from None
    lines: list[ChargeLine] = []
    for position, level in enumerate(chain.levels):
        match = level.table.select(number, now)
        if match is None:
            raise _Refused(NoRate(level.account, level.tariff, number).reason, level.account)
        prefix, rate = match
        payer, owner = nodes[position], nodes[position + 1]  # levels follow the chain, account first
        lines.append(
            ChargeLine(
                position=position,
                node_id=payer.id,
                account=payer.login,
                wallet_account_id=ACCOUNTS.id(connection, payer, AccountPurpose.WALLET, payer.currency),
                revenue_account_id=ACCOUNTS.id(connection, owner, AccountPurpose.REVENUE, level.currency),
                tariff=level.tariff,
                currency=level.currency,
                prefix=prefix,
                description=rate.description,
                pricing=rate.pricing,
                subscription_id=None,
                plan_seconds_reserved=0,
                reserved_micros=0,
                reservation=0,
            )
        )
    lines += _floor_lines(lines[0], item.floors)
    covered = chain.allowance is not None and chain.allowance.plan.covers(number)
    return _Plan(item, base | {"number": number}, node, nodes, number, covered, lines)


def _decide(connection: Connection, plan: _Plan, state: dict[int, Account], active: list[Node]) -> _Decided:
    """Decide one authorization under the batch's locks, against ``state``, the balances the authorizations
    before it in the batch left, which it updates with its own reservations."""
    item, node, lines = plan.item, plan.node, list(plan.lines)
    for member in plan.nodes:
        _check_concurrency(connection, member, active)
    allowance = 0
    if plan.allowance_plan:
        subscription = store.active_subscription(connection, node.id)
        if subscription is not None:
            lines[0] = replace(lines[0], subscription_id=subscription[0])
            allowance = subscription[1]
    funds = [_funds(line, state[line.wallet_account_id], allowance if line.position == 0 else 0) for line in lines]
    cap = min(node.max_call_seconds or CALL_SECONDS_MAX, item.settings.max_call_seconds)
    try:
        longest = longest_call(funds, cap=cap)
    except InsufficientFunds as short:
        raise _Refused(_shortfall(lines, short.account), short.account) from None
    grant = next_grant(funds, granted=0, quota=item.settings.grant_seconds, hard_max=longest.seconds)
    answer = {
        "call_id": item.request.call_id,
        "status": "authorized",
        "max_seconds": longest.seconds,
        "grant_seconds": grant.total_seconds,
        "final": grant.final,
        "limited_by": longest.limited_by,
    }
    now = plan.base["created_at"]
    answered = item.request.answered
    call = (
        plan.base
        | _CALL_DEFAULTS
        | {
            "state": "answered" if answered else "authorized",
            "number": plan.number,
            "limited_by": longest.limited_by,
            "max_seconds": longest.seconds,
            "grant_seconds": grant.total_seconds,
            "final": grant.final,
            "answered_at": now if answered else None,
            "grant_expires_at": now
            + timedelta(seconds=grant.total_seconds if answered else item.settings.ring_timeout_seconds),
            "authorize_answer": _dumps(answer),
        }
    )
    reserved, amounts = _first_reservations(connection, lines, grant.total_seconds, allowance)
    applied = apply_batch(
        _reservation_requests(0, reserved, amounts), accounts=state, pendings={}, existing={}, now=now
    )
    require(isinstance(applied, Applied), f"call {item.request.call_id}: its reservations refused once decided")
    assert isinstance(applied, Applied)  # for the type checker
    state.update(applied.accounts)
    active.append(node)
    return _Decided(item, answer, call, reserved, amounts)


def _first_reservations(
    connection: Connection, lines: Sequence[ChargeLine], total_seconds: int, allowance: int
) -> tuple[list[ChargeLine], list[int]]:
    """Each level's first reservation for ``total_seconds`` (its plan seconds first), and the lines that
    record them; the plan's seconds are taken at once (under the subscription's lock)."""
    reserved: list[ChargeLine] = []
    amounts: list[int] = []
    for line in lines:
        plan_seconds, amount = split_cost(line.pricing, total_seconds, allowance if line.subscription_id else 0)
        if line.subscription_id is not None:
            store.add_subscription_seconds(connection, line.subscription_id, -plan_seconds)
        reserved.append(
            replace(line, plan_seconds_reserved=plan_seconds, reserved_micros=amount, reservation=1 if amount else 0)
        )
        amounts.append(amount)
    return reserved, amounts


def _reservation_requests(pk: int, lines: Sequence[ChargeLine], amounts: Sequence[int]) -> list[TransferRequest]:
    return [
        TransferRequest(
            id=_pending_id(pk, line.position, line.reservation),
            amount_micros=amount,
            debit_account_id=line.wallet_account_id,
            credit_account_id=line.revenue_account_id,
            kind=TransferKind.CALL_CHARGE,
            reference=f"call:{pk}",
            phase=Phase.PENDING,
        )
        for line, amount in zip(lines, amounts, strict=True)
        if amount
    ]


FLOOR_POSITION_FIRST = 100  # charge lines from this position on are floors, not levels of the chain


def _floor_lines(first: ChargeLine, floors: Sequence[Floor]) -> list[ChargeLine]:
    """A floor (a user's spending cap) is one more level after the chain: it pays the first level's price for
    the call from its account into its sink, so it is reserved, extended, posted and released as they are."""
    return [
        replace(
            first,
            position=offset,
            node_id=floor.node_id,
            account=floor.label,
            wallet_account_id=floor.account_id,
            revenue_account_id=floor.sink_account_id,
        )
        for offset, floor in enumerate(floors, start=FLOOR_POSITION_FIRST)
    ]


def _shortfall(lines: Sequence[ChargeLine], account: str | None) -> str:
    """Why a call cannot go on: a level's money, or a floor's (a spending cap) that is spent."""
    floor = any(line.position >= FLOOR_POSITION_FIRST and line.account == account for line in lines)
    return "spending_cap_reached" if floor else "insufficient_funds"


def _check_concurrency(connection: Connection, member: Node, unwritten: Sequence[Node] = ()) -> None:
    """Refuse a call over a level's limit of calls at once; ``unwritten``: the accounts of calls authorized
    earlier in the same batch, not yet in the calls table."""
    limit = member.concurrent_calls_limit
    if limit is None:
        return
    # An organization (a pbx client) counts the calls of its users' accounts too, as a reseller does.
    if member.position.kind is NodeKind.CLIENT and member.position.client_type is not ClientType.PBX:
        active = store.count_active_of_node(connection, member.id) + sum(1 for n in unwritten if n.id == member.id)
    else:
        active = store.count_active_below(connection, member.path)
        active += sum(1 for n in unwritten if n.path.startswith(member.path))
    if active >= limit:
        raise _Refused("concurrent_calls_limit", member.login)


def _account_ids(lines: Sequence[ChargeLine]) -> list[int]:
    """Every account a call's reservations touch: locked all at once, in the ledger's one order (ascending
    ids), so no transaction holding a wallet waits for a revenue account another holds while it waits back."""
    return [account for line in lines for account in (line.wallet_account_id, line.revenue_account_id)]


def _funds(line: ChargeLine, wallet: Account, allowance: int) -> LevelFunds:
    """What a level can put towards this call: its available money plus what it already reserved for it."""
    available = wallet.available_micros + line.reserved_micros if wallet.floor else UNLIMITED_MICROS
    return LevelFunds(line.account, line.pricing, available, allowance + line.plan_seconds_reserved)


def _pending_id(pk: int, position: int, reservation: int) -> str:
    return f"call:{pk}:{position}:{reservation}"


def _reserve(
    connection: Connection,
    pk: int,
    lines: Sequence[ChargeLine],
    total_seconds: int,
    allowance: int,
    now: datetime,
    locked: dict[int, Account],
) -> list[ChargeLine]:
    """Replace every level's reservation with one for ``total_seconds``, in one linked ledger batch.

    ``allowance`` is the client's plan seconds still free (not counting what this call holds already).
    """
    requests: list[TransferRequest] = []
    updated: list[ChargeLine] = []
    for line in lines:
        plan_total = line.plan_seconds_reserved + (allowance if line.subscription_id is not None else 0)
        plan_seconds, amount = split_cost(line.pricing, total_seconds, plan_total)
        if line.reservation and line.reserved_micros:
            requests.append(_void(pk, line))
        reservation = line.reservation + 1 if amount else line.reservation
        if amount:
            requests.append(
                TransferRequest(
                    id=_pending_id(pk, line.position, reservation),
                    amount_micros=amount,
                    debit_account_id=line.wallet_account_id,
                    credit_account_id=line.revenue_account_id,
                    kind=TransferKind.CALL_CHARGE,
                    reference=f"call:{pk}",
                    phase=Phase.PENDING,
                )
            )
        if line.subscription_id is not None:
            store.add_subscription_seconds(connection, line.subscription_id, line.plan_seconds_reserved - plan_seconds)
        updated.append(
            replace(line, plan_seconds_reserved=plan_seconds, reserved_micros=amount, reservation=reservation)
        )
    if requests:
        ledger_store.execute(connection, requests, now=now, locked=locked)
    return updated


def _void(pk: int, line: ChargeLine) -> TransferRequest:
    return _resolve(pk, _pending_id(pk, line.position, line.reservation), Phase.VOID, None)


# -- answer, update, end ------------------------------------------------------------------------


def _locked_call(connection: Connection, call_id: str, principal: Principal | None) -> CallRecord:
    """The caller's own call ``call_id`` (of its tenant), locked: a switch controls only the calls its tenant
    authorized, never another's that happens to carry the same id."""
    (call,) = _locked_calls(connection, [(call_id, principal)])
    if isinstance(call, BaseException):
        raise call
    return call


def _locked_calls(
    connection: Connection, wanted: Sequence[tuple[str, Principal | None]]
) -> list[CallRecord | TollwayError]:
    """Each caller's own call (of its tenant), all locked by one statement in ascending id order; in its
    place the error its caller gets: forbidden, or unknown (another tenant's call is no call at all)."""
    found: list[CallRecord | TollwayError | tuple[str, int]] = []
    for call_id, principal in wanted:
        if principal is not None and Action.CALLS_CONTROL not in principal.actions:
            found.append(Forbidden(Action.CALLS_CONTROL))
        elif NUL in call_id:
            found.append(CallUnknown(call_id))
        else:
            found.append((call_id, tenant_of(connection, principal)))
    locked = store.lock_calls(connection, [key for key in found if isinstance(key, tuple)])
    calls_: list[CallRecord | TollwayError] = []
    for key, (call_id, principal) in zip(found, wanted, strict=True):
        if not isinstance(key, tuple):
            calls_.append(key)
            continue
        call = locked.get(key)
        if call is None or call.node_id is None:
            calls_.append(CallUnknown(call_id))
            continue
        if principal is not None:
            try:
                authorize(principal, Action.CALLS_CONTROL, cached.node(connection, call.node_id))
            except NotFound:
                calls_.append(CallUnknown(call_id))
                continue
        calls_.append(call)
    return calls_


def answer_call(
    database: Database, call_id: str, *, principal: Principal | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The callee answered: the grant's clock starts now. A repeat changes nothing."""
    instant = now or utc_now()

    def use_case(connection: Connection) -> dict[str, Any]:
        call = _locked_call(connection, call_id, principal)
        if call.state == "authorized":
            changed: dict[str, Any] = dict(
                state="answered",
                answered_at=instant,
                grant_expires_at=instant + timedelta(seconds=call.grant_seconds),
            )
            store.update_call(connection, call.id, **changed)
            call = replace(call, **changed)
        return call_view(call)

    return database.run(use_case)


def update_call(
    database: Database,
    call_id: str,
    *,
    sequence: int,
    elapsed_seconds: int,
    principal: Principal | None = None,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An interim update from the switch: the call is alive; extend its grant if it is running low.

    The answer to an update is recorded; the same sequence number again gets that answer.
    """
    instant = now or utc_now()

    def use_case(connection: Connection) -> dict[str, Any]:
        call = _locked_call(connection, call_id, principal)
        if sequence <= call.update_sequence and call.update_answer is not None:
            recorded: dict[str, Any] = json.loads(call.update_answer)
            return recorded
        if not call.active:
            return _update_answer(call)
        if call.state == "authorized":  # an update means the call is up: it was answered, elapsed seconds ago
            answered_at = max(call.created_at, instant - timedelta(seconds=max(0, elapsed_seconds)))
            changed: dict[str, Any] = dict(
                state="answered",
                answered_at=answered_at,
                grant_expires_at=answered_at + timedelta(seconds=call.grant_seconds),
            )
            store.update_call(connection, call.id, **changed)
            call = replace(call, **changed)
        call = _flag_elapsed(connection, call, elapsed_seconds, settings, instant)
        if not call.final and call.grant_seconds - elapsed_seconds <= settings.extend_lead_seconds:
            call = _extend(connection, call, settings, instant)
        answer = _update_answer(call)
        store.update_call(connection, call.id, update_sequence=max(sequence, 0), update_answer=_dumps(answer))
        return answer

    return database.run(use_case)


def _flag_elapsed(
    connection: Connection, call: CallRecord, elapsed_seconds: int, settings: CallSettings, now: datetime
) -> CallRecord:
    """An update that says the call has run longer than it can have is recorded on the call, and counted."""
    if call.overshoot_reason is not None or cached.trusts_durations(connection, call.switch_id):
        return call
    overshoot = believable_elapsed(
        elapsed_seconds,
        granted_seconds=call.grant_seconds,
        elapsed_seconds=_elapsed_seconds(call, now),
        margin_seconds=settings.duration_margin_seconds,
    )
    if overshoot is None:
        return call
    _count_overshoot(call, elapsed_seconds, overshoot)
    store.update_call(connection, call.id, overshoot_reason=str(overshoot))
    return replace(call, overshoot_reason=str(overshoot))


def _update_answer(call: CallRecord) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "status": call.state,
        "max_seconds": call.max_seconds,
        "grant_seconds": call.grant_seconds,
        "final": call.final,
        "reason": call.reason,
        "level": call.level,
    }


def _extend(connection: Connection, call: CallRecord, settings: CallSettings, now: datetime) -> CallRecord:
    """One more quota at every level, or what the levels can still pay for, and then a final grant."""
    lines = store.lines_of(connection, call.id)
    accounts = ledger_store.lock_accounts(connection, _account_ids(lines))
    allowance = 0
    client = lines[0]
    if client.subscription_id is not None:
        allowance = store.lock_subscription(connection, client.subscription_id)
    funds = [_funds(line, accounts[line.wallet_account_id], allowance if line.position == 0 else 0) for line in lines]
    grant = next_grant(funds, granted=call.grant_seconds, quota=settings.grant_seconds, hard_max=call.max_seconds)
    if grant.total_seconds > call.grant_seconds:
        reserved = _reserve(connection, call.id, lines, grant.total_seconds, allowance, now, accounts)
        store.update_lines(
            connection,
            call.id,
            [
                {
                    "position": line.position,
                    "plan_seconds_reserved": line.plan_seconds_reserved,
                    "reserved_micros": line.reserved_micros,
                    "reservation": line.reservation,
                }
                for line in reserved
            ],
        )
    answered_at = call.answered_at or now
    values: dict[str, Any] = {
        "grant_seconds": grant.total_seconds,
        "final": grant.final,
        "extensions": call.extensions + 1,
        "grant_expires_at": answered_at + timedelta(seconds=grant.total_seconds),
    }
    if grant.final and grant.total_seconds < call.max_seconds:
        # A level ran dry before the switch's own timeout: the engine must end the call when the grant does.
        values |= _disconnect_values(
            _shortfall(lines, grant.limited_by), grant.limited_by, answered_at + timedelta(seconds=grant.total_seconds)
        )
    store.update_call(connection, call.id, **values)
    return replace(call, **values)


def _disconnect_values(reason: str, level: str | None, at: datetime) -> dict[str, Any]:
    return {
        "reason": reason,
        "level": level,
        "disconnect_reason": reason,
        "disconnect_state": "due",
        "disconnect_next_at": at,
        "disconnect_attempts": 0,
    }


def end_call(
    database: Database,
    call_id: str,
    *,
    duration_seconds: int,
    reason: str = "normal",
    principal: Principal | None = None,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The call is over: charge every level exactly for ``duration_seconds`` and release the rest.

    A duration the switch cannot have measured (longer than the grant, or than the time since the answer,
    by more than the margin) is charged at most what was granted and flagged, unless the switch is trusted
    with durations (``tollway.calls.model.charged_duration``). Decided in a batch with the other ends this
    process receives meanwhile (``decide_ends``): one transaction, the accounts of all of them locked once.
    """
    if duration_seconds < 0 or duration_seconds > 10 * CALL_SECONDS_MAX:
        raise Refusal("duration_invalid", "a duration is a whole number of seconds, 0 to 40 hours")
    return _end_batches(database).submit(Ending(call_id, duration_seconds, reason, principal, settings, now))


@dataclass(frozen=True, slots=True)
class Ending:
    """One end request on its way into a batch."""

    call_id: str
    duration_seconds: int
    reason: str
    principal: Principal | None
    settings: CallSettings
    now: datetime | None  # None: the moment its batch is decided


def _end_batches(database: Database) -> GroupCommit[Ending, dict[str, Any]]:
    return _group_commit(database, decide_ends)


def decide_ends(database: Database, items: Sequence[Ending]) -> list[dict[str, Any] | BaseException]:
    """Decide a batch of ends in one transaction; if it fails as a whole, each end alone. Two ends of one
    call id in a batch are decided alone, one after the other (the second answers what the first did)."""
    if len(items) > 1 and len({item.call_id for item in items}) == len(items):
        try:
            return list(database.run(lambda connection: _end_batch(connection, items)))
        except Exception as error:  # decided again one by one, where each gets its own outcome
            log.info("end_batch_split", ends=len(items), error=type(error).__name__)
    outcomes: list[dict[str, Any] | BaseException] = []
    for item in items:
        try:
            (outcome,) = database.run(lambda connection, item=item: _end_batch(connection, [item]))  # type: ignore[misc]
        except Exception as error:  # raised in the request's own thread
            outcome = error
        outcomes.append(outcome)
    return outcomes


def _end_batch(connection: Connection, items: Sequence[Ending]) -> list[dict[str, Any] | BaseException]:
    """End calls in one transaction, in order: their rows locked by one statement, then the accounts of all
    of them by another (the order every writer takes them in: calls, then accounts, then plans); each close
    decided in turn, then all written with one statement per table."""
    moment = utc_now()
    found = _locked_calls(connection, [(item.call_id, item.principal) for item in items])
    active = [call for call in found if isinstance(call, CallRecord) and call.active]
    lines = store.lines_of_calls(connection, [call.id for call in active])
    locked = ledger_store.lock_accounts(connection, {a for call in active for a in _account_ids(lines[call.id])})
    outcomes: list[dict[str, Any] | BaseException] = []
    closings: list[tuple[int, Ending, _Closing]] = []
    for item, call in zip(items, found, strict=True):
        if not isinstance(call, CallRecord):
            outcomes.append(call)  # this request's own error: its thread raises it
        elif call.active:
            closings.append((len(outcomes), item, _end_closing(connection, item, call, lines[call.id], moment)))
            outcomes.append({})
        else:
            outcomes.append(_end_ended(connection, item, call))
    _write_closings(connection, [closing for _, _, closing in closings], locked)
    for index, item, closing in closings:
        outcomes[index] = shown_call(connection, item.principal, closing.closed, closing.lines)
    return outcomes


def _end_closing(
    connection: Connection, item: Ending, call: CallRecord, lines: list[ChargeLine], moment: datetime
) -> _Closing:
    now = item.now or moment
    charged = charged_duration(
        item.duration_seconds,
        granted_seconds=call.grant_seconds,
        elapsed_seconds=_elapsed_seconds(call, now),
        margin_seconds=item.settings.duration_margin_seconds,
        trusted=cached.trusts_durations(connection, call.switch_id),
    )
    if charged.overshoot is not None:
        _count_overshoot(call, item.duration_seconds, charged.overshoot)
    return _closing(connection, call, lines, charged, item.reason[:48], now, reported=item.duration_seconds)


def _end_ended(connection: Connection, item: Ending, call: CallRecord) -> dict[str, Any]:
    """An end of a call that is over already: what it was, as the first end answered."""
    if call.disconnect_state == "due":  # a swept call the switch has now ended: stop pushing
        changed: dict[str, Any] = {"disconnect_state": None, "disconnect_next_at": None}
        store.update_call(connection, call.id, **changed)
        call = replace(call, **changed)
    return shown_call(connection, item.principal, call, store.lines_of(connection, call.id))


def _elapsed_seconds(call: CallRecord, now: datetime) -> int:
    """Whole seconds since the answer (since the authorization, for a call never answered), by our clock."""
    return max(0, math.ceil((now - (call.answered_at or call.created_at)).total_seconds()))


def _count_overshoot(call: CallRecord, reported_seconds: int, overshoot: str) -> None:
    metrics.CALL_OVERSHOOTS.labels(reason=overshoot).inc()
    log.warning(
        "call_duration_not_believed",
        call_id=call.call_id,
        account=call.account,
        reported_seconds=reported_seconds,
        granted_seconds=call.grant_seconds,
        overshoot=overshoot,
    )


def _close(
    connection: Connection,
    call: CallRecord,
    charged: ChargedDuration,
    end_reason: str,
    now: datetime,
    *,
    reported: int | None,
) -> tuple[CallRecord, list[ChargeLine]]:
    """Post each level's exact cost from its reservation, charge any overshoot beyond it, in one batch.

    ``charged``: the seconds to charge and why they differ from the ``reported`` ones, if they do (None:
    the engine itself closed the call, charging what it had granted).
    """
    lines = store.lines_of(connection, call.id)
    # Accounts first, then the plan: the order authorize and extensions take them in (no deadlock).
    accounts = ledger_store.lock_accounts(connection, _account_ids(lines))
    closing = _closing(connection, call, lines, charged, end_reason, now, reported=reported)
    _write_closings(connection, [closing], accounts)
    return closing.closed, closing.lines


@dataclass(frozen=True, slots=True)
class _Closing:
    """A call's close, decided: what its charge lines, the ledger and its record get."""

    call: CallRecord
    now: datetime
    changes: list[dict[str, Any]]  # per charge line, with its ``position``
    requests: list[TransferRequest]
    values: dict[str, Any]  # the calls row's new columns

    @property
    def closed(self) -> CallRecord:
        return replace(self.call, **self.values)

    @property
    def lines(self) -> list[ChargeLine]:
        return [
            replace(line, **{k: v for k, v in change.items() if k != "position"})
            for line, change in zip(self._lines, self.changes, strict=True)
        ]

    _lines: list[ChargeLine] = field(default_factory=list)


def _closing(
    connection: Connection,
    call: CallRecord,
    lines: list[ChargeLine],
    charged: ChargedDuration,
    end_reason: str,
    now: datetime,
    *,
    reported: int | None,
) -> _Closing:
    """Decide a call's close (its accounts locked already): each level's cost, posted from its reservation,
    the rest released, any overshoot charged beyond it. Its plan's seconds are settled at once."""
    duration = charged.seconds
    client = lines[0]
    allowance = store.lock_subscription(connection, client.subscription_id) if client.subscription_id else 0
    requests: list[TransferRequest] = []
    changes: list[dict[str, Any]] = []
    for line in lines:
        plan_total = line.plan_seconds_reserved + (allowance if line.subscription_id is not None else 0)
        plan_seconds, amount = split_cost(line.pricing, duration, plan_total)
        pending_id = _pending_id(call.id, line.position, line.reservation)
        posted = min(amount, line.reserved_micros)
        if line.reserved_micros and posted:
            requests.append(_resolve(call.id, pending_id, Phase.POST, posted))
        elif line.reserved_micros:
            requests.append(_void(call.id, line))
        overshoot = amount - posted
        if overshoot:
            requests.append(
                TransferRequest(
                    id=f"{pending_id}:over",
                    amount_micros=overshoot,
                    debit_account_id=line.wallet_account_id,
                    credit_account_id=line.revenue_account_id,
                    kind=TransferKind.CALL_CHARGE,
                    reference=f"call:{call.id}",
                    overshoot_allowed=True,
                )
            )
        if line.subscription_id is not None:
            store.add_subscription_seconds(connection, line.subscription_id, line.plan_seconds_reserved - plan_seconds)
        changes.append(
            {
                "position": line.position,
                "billed_seconds": billed_seconds(line.pricing, duration),
                "plan_seconds": plan_seconds,
                "amount_micros": amount,
                "overshoot_micros": overshoot,
            }
        )
    answered = call.answered_at is not None or duration > 0
    values: dict[str, Any] = dict(
        state="ended",
        ended_at=now,
        answered_at=call.answered_at or (now - timedelta(seconds=duration) if duration else None),
        grant_expires_at=None,
        duration_seconds=duration,
        reported_duration_seconds=reported,
        overshoot_seconds=max(0, (reported or 0) - call.grant_seconds) if answered else 0,
        overshoot_reason=charged.overshoot or call.overshoot_reason,
        end_reason=end_reason,
        # A call the switch ended needs no push any more; a swept one still does: the switch may hold it up.
        disconnect_state=None if call.disconnect_state == "due" and end_reason != "stale" else call.disconnect_state,
        disconnect_next_at=call.disconnect_next_at if end_reason == "stale" else None,
    )
    return _Closing(call, now, changes, requests, values, lines)


def _write_closings(connection: Connection, closings: Sequence[_Closing], locked: dict[int, Account]) -> None:
    """Write decided closes: their charge lines and records with one statement each, their postings in one
    ledger batch (one per moment, when callers gave moments of their own), ``locked`` being their accounts."""
    if not closings:
        return
    store.update_lines_of(connection, [(closing.call.id, closing.changes) for closing in closings])
    accounts = locked
    for at, requests in _by_moment([(closing.now, closing.requests) for closing in closings]):
        accounts = accounts | ledger_store.execute(connection, requests, now=at, locked=accounts).accounts
    store.update_calls(connection, [(closing.call.id, closing.values) for closing in closings])


def _by_moment(
    batches: Sequence[tuple[datetime, list[TransferRequest]]],
) -> list[tuple[datetime, list[TransferRequest]]]:
    """Consecutive transfer requests grouped by the moment they are recorded at; none empty."""
    grouped: list[tuple[datetime, list[TransferRequest]]] = []
    for at, requests in batches:
        if not requests:
            continue
        if grouped and grouped[-1][0] == at:
            grouped[-1][1].extend(requests)
        else:
            grouped.append((at, list(requests)))
    return grouped


def _resolve(pk: int, pending_id: str, phase: Phase, amount: int | None) -> TransferRequest:
    return TransferRequest(
        id=f"{pending_id}:{phase}",
        amount_micros=amount,
        kind=TransferKind.CALL_CHARGE,
        reference=f"call:{pk}",
        phase=phase,
        pending_id=pending_id,
    )


def get_call(database: Database, call_id: str, *, principal: Principal | None = None) -> dict[str, Any]:
    """One call by its id: the caller's own tenant's call of that id, else the one call of that id it may see.

    Someone who sees the calls of several tenants (an owner, the provider) may find that two of them used
    the same id: that is refused as ``call_id_ambiguous``, and ``list_calls(call_id=...)`` lists them all.
    """
    with database.reading() as connection:
        call = _readable_call(connection, call_id, principal)
        return shown_call(connection, principal, call, store.lines_of(connection, call.id))


def _readable_call(connection: Connection, call_id: str, principal: Principal | None) -> CallRecord:
    scope = reader_scope(principal)
    if "\x00" in call_id:
        raise CallUnknown(call_id)
    own = store.find_call(connection, call_id, tenant_id=tenant_of(connection, principal))
    if own is not None and own.node_id is not None and _may_read(connection, principal, own):
        return own
    found = store.calls_with_id(connection, call_id, path_prefix=scope.path_prefix, node_id=scope.node_id, limit=2)
    if len(found) > 1:
        raise Refusal("call_id_ambiguous", f"several calls you can see have the id {call_id}: list them by call_id")
    if not found or not _may_read(connection, principal, found[0]):
        raise CallUnknown(call_id)
    return found[0]


def reader_scope(principal: Principal | None) -> Scope:
    """Which calls a principal may read, as a query's filter: anyone with ``calls:read`` (or a switch's
    ``calls:control``) its subtree, a client its own calls; an agent none (it sees totals, not calls)."""
    if principal is None:
        return Scope()
    if not principal.actions & {Action.CALLS_READ, Action.CALLS_CONTROL}:
        raise Forbidden(Action.CALLS_READ)
    scope = scope_of(principal)
    if scope.agent_id is not None:
        raise Forbidden(Action.CALLS_READ)
    return scope


def _may_read(connection: Connection, principal: Principal | None, call: CallRecord) -> bool:
    if principal is None:
        return True
    try:
        authorize(principal, Action.CALLS_READ, tree_store.get_node(connection, present(call.node_id, "node")))
    except NotFound:
        return False
    return True


# -- the keeper: extensions, sweeps, forced disconnects -------------------------------------------


KEEPER_BATCH = 200


def extend_due(
    database: Database,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> int:
    """Extend every answered call whose grant runs out within the lead time. Safe in many processes."""
    instant = now or utc_now()
    until = instant + timedelta(seconds=settings.extend_lead_seconds)

    def extend(connection: Connection, call: CallRecord) -> CallRecord | None:
        due = call.grant_expires_at is not None and call.grant_expires_at <= until
        if call.state != "answered" or call.final or not due or call.update_sequence:
            return None  # ended or extended meanwhile
        return _extend(connection, call, settings, instant)

    return _each_due(
        database,
        lambda connection: store.due_for_extension(connection, until=until, limit=KEEPER_BATCH),
        extend,
        budget_seconds,
    )


def sweep_stale(
    database: Database,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> int:
    """Close calls the switch went silent about: charged for what was granted, or nothing if never answered."""
    instant = now or utc_now()
    before = instant - timedelta(seconds=settings.stale_margin_seconds)

    def close(connection: Connection, call: CallRecord) -> CallRecord | None:
        if not call.active or call.grant_expires_at is None or call.grant_expires_at > before:
            return None
        if call.state == "authorized":
            return _close(connection, call, ChargedDuration(0, None), "unanswered", instant, reported=None)[0]
        granted = ChargedDuration(call.grant_seconds, None)
        return _close(connection, call, granted, "stale", instant, reported=None)[0]

    return _each_due(
        database, lambda connection: store.stale(connection, before=before, limit=KEEPER_BATCH), close, budget_seconds
    )


def _each_due(
    database: Database,
    find: Callable[[Connection], list[int]],
    handle: Callable[[Connection, CallRecord], CallRecord | None],
    budget_seconds: float | None = None,
) -> int:
    """Handle each call ``find`` lists in its own transaction, skipping those another process holds.

    With ``budget_seconds`` (the keeper's ticks), at most that much work per step and tick: a keeper that
    has fallen behind on one duty still does the others every tick, and picks up where it stopped.
    """
    done = 0
    deadline = time.monotonic() + (budget_seconds if budget_seconds is not None else 10.0**9)
    while time.monotonic() < deadline:
        with database.reading() as connection:
            ids = find(connection)
        for pk in ids:

            def use_case(connection: Connection, pk: int = pk) -> bool:
                call = store.lock_call_if_free(connection, pk)
                return call is not None and handle(connection, call) is not None

            if database.run(use_case):
                done += 1
            if time.monotonic() >= deadline:
                return done
        if len(ids) < KEEPER_BATCH:
            return done
    return done


def flag_blocked(database: Database, *, now: datetime | None = None) -> int:
    """Calls below a suspended or closed node must end now: schedule their disconnect."""
    instant = now or utc_now()
    flagged = 0
    with database.reading() as connection:
        blocked = store.blocked_nodes(connection)
    for login, path, status in blocked:
        with database.reading() as connection:
            ids = store.active_below_without_disconnect(connection, path, limit=10_000)
        for pk in ids:

            def use_case(connection: Connection, pk: int = pk, login: str = login, status: str = status) -> bool:
                call = store.lock_call_if_free(connection, pk)
                if call is None or not call.active or call.disconnect_state is not None:
                    return False
                # The grant shrinks to the time talked so far: a switch that never answers the push
                # is swept and charged up to here, not to the end of a grant the account can no longer use.
                talked = math.ceil((instant - call.answered_at).total_seconds()) if call.answered_at else 0
                store.update_call(
                    connection,
                    pk,
                    final=True,
                    grant_seconds=min(call.grant_seconds, max(talked, 0)),
                    grant_expires_at=instant,
                    **_disconnect_values(f"account_{status}", login, instant),
                )
                return True

            if database.run(use_case):
                flagged += 1
    return flagged


CALL_STATES = ("authorized", "answered", "ended", "refused")
NUMBER_PREFIX_PATTERN = re.compile(r"^[0-9]{1,15}$")
EXPORT_PAGE_CALLS = 500  # calls read per transaction while an export streams


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which calls to list: every field left None keeps every call."""

    account: str | None = None  # the calls of this account and of every account below it
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    prefix: str | None = None  # the E.164 number dialled starts with these digits
    state: str | None = None  # authorized, answered, ended or refused
    active: bool | None = None  # True: authorized or answered; False: ended or refused

    def check(self) -> CallFilter:
        if self.state is not None and self.state not in CALL_STATES:
            raise Refusal("state_invalid", f"a call's state is one of {', '.join(CALL_STATES)}")
        if self.prefix is not None and not NUMBER_PREFIX_PATTERN.match(self.prefix):
            raise Refusal("prefix_invalid", "a destination prefix is 1 to 15 digits of an E.164 number, without +")
        for instant in (self.since, self.until):
            if instant is not None and instant.tzinfo is None:
                raise Refusal("time_zone_missing", "say the time zone of since and until (Z or +hh:mm)")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Refusal("period_invalid", "since must come before until")
        return self


def list_calls(
    database: Database,
    *,
    principal: Principal | None = None,
    active: bool | None = None,
    after_id: int = 0,
    limit: int = 100,
    where: CallFilter | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Calls the principal may see, by ascending id, each with the charge lines it may see, and the
    ``after_id`` of the next page (None at the end).

    A switch (``calls:control``) and anyone with ``calls:read`` sees the calls of its subtree; an agent sees
    none (it sees totals, not calls); a client sees its own. ``where`` narrows them (an account it does not
    see answers not found, as one that does not exist).
    """
    chosen = (where or CallFilter()).check()
    if active is not None:
        chosen = replace(chosen, active=active)
    scope = reader_scope(principal)
    with database.reading() as connection:
        subtree = _subtree(connection, principal, chosen.account)
        views = _page(connection, principal, scope, chosen, subtree, after_id=after_id, limit=limit)
    next_after_id = views[-1][0] if len(views) == limit else None
    return [view for _, view in views], next_after_id


def _subtree(connection: Connection, principal: Principal | None, login: str | None) -> str | None:
    if login is None:
        return None
    node = tree_store.find_node(connection, login) if NUL not in login else None
    if node is None:
        raise NotFound("node", login)
    authorize(principal, Action.CALLS_READ, node)
    return node.path


def _page(
    connection: Connection,
    principal: Principal | None,
    scope: Scope,
    where: CallFilter,
    subtree: str | None,
    *,
    after_id: int,
    limit: int,
) -> list[tuple[int, dict[str, Any]]]:
    """(id, view) of one page of calls, their charge lines as the principal may see them (three queries)."""
    records = store.page_calls(
        connection,
        path_prefix=scope.path_prefix,
        node_id=scope.node_id,
        active=where.active,
        after_id=after_id,
        limit=limit,
        subtree=subtree,
        since=where.since,
        until=where.until,
        number_prefix=where.prefix,
        state=where.state,
    )
    lines = store.lines_of_calls(connection, [record.id for record in records])
    payers = (
        {}
        if principal is None
        else tree_store.nodes_by_id(connection, (line.node_id for found in lines.values() for line in found))
    )
    return [(record.id, call_view(record, _seen(principal, lines[record.id], payers))) for record in records]


EXPORT_HEADERS = (
    "call_id",
    "account",
    "caller",
    "callee",
    "number",
    "status",
    "created_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "end_reason",
    "payer",
    "tariff",
    "currency",
    "prefix",
    "price_per_minute",
    "billed_seconds",
    "amount",
)


def export_calls(
    database: Database, *, principal: Principal | None = None, where: CallFilter | None = None
) -> Iterator[str]:
    """The calls ``list_calls`` would list, every one of them, as CSV lines: one line per charge the principal
    may see (a call without any, such as a refused one, has one line with the charge's columns empty).

    Checked before the first line (a bad filter or an account it may not see is refused, not half-written);
    then read ``EXPORT_PAGE_CALLS`` calls per transaction while the lines are sent, so an export of any size
    holds neither a transaction open nor more than a page in memory. Cells go through ``tollway.csvsafe``.
    """
    chosen = (where or CallFilter()).check()
    scope = reader_scope(principal)
    with database.reading() as connection:
        subtree = _subtree(connection, principal, chosen.account)
    return _export_lines(database, principal, scope, chosen, subtree)


def _export_lines(
    database: Database, principal: Principal | None, scope: Scope, where: CallFilter, subtree: str | None
) -> Iterator[str]:
    yield _csv_line(EXPORT_HEADERS)
    after_id = 0
    while True:
        with database.reading() as connection:
            page = _page(connection, principal, scope, where, subtree, after_id=after_id, limit=EXPORT_PAGE_CALLS)
        for _, view in page:
            for line in view.get("charges") or [None]:
                yield _csv_line(_export_row(view, line))
        if len(page) < EXPORT_PAGE_CALLS:
            return
        after_id = page[-1][0]


def _export_row(view: dict[str, Any], line: dict[str, Any] | None) -> list[object]:
    call = [view[name] for name in EXPORT_HEADERS[:11]]
    if line is None:
        return [*call, *[None] * 7]
    amount = line.get("amount_micros")
    return [
        *call,
        line["account"],
        line["tariff"],
        line["currency"],
        line["prefix"],
        to_decimal(line["price_micros"]),
        line.get("billed_seconds"),
        None if amount is None else to_decimal(amount),
    ]


def _csv_line(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(safe_row(values))
    return buffer.getvalue()


def create_switch(
    database: Database,
    *,
    name: str,
    node_login: str,
    notify_kind: str = "none",
    notify_url: str | None = None,
    principal: Principal | None = None,
    trusted_durations: bool = False,
) -> tuple[str, str]:
    """Register a switch with an API key of its own (``calls:control`` and ``calls:read`` at ``node_login``).

    Answers (switch name, API key plaintext); the plaintext is shown this once and stored only hashed.
    ``trusted_durations``: the durations it reports are charged as they are, past the grant and below a
    floor if so (the behaviour before durations were capped), for switches the provider runs itself.
    """

    try:
        notifier_for(notify_kind, notify_url).close()  # an unknown kind or a missing URL is refused now
    except ValueError as error:
        raise Refusal("notify_invalid", str(error)) from None
    with database.reading() as connection:
        node = tree_store.find_node(connection, node_login)
        taken = store.switch_named(connection, name)
    if node is None:
        raise NotFound("node", node_login)
    if taken:
        raise Refusal("switch_exists", f"there is already a switch named {name}")
    role = Role.PROVIDER_ADMIN if node.position.kind is NodeKind.PROVIDER else Role.RESELLER_ADMIN
    key, plaintext = access.create_api_key(
        database,
        principal,
        node_login=node_login,
        name=f"switch {name}"[:63],
        role=role,
        actions=[Action.CALLS_CONTROL, Action.CALLS_READ],
    )
    database.run(
        lambda connection: store.insert_switch(
            connection,
            name=name,
            api_key_id=key.id,
            notify_kind=notify_kind,
            notify_url=notify_url,
            now=utc_now(),
            trusted_durations=trusted_durations,
        )
    )
    return name, plaintext


SWITCHES_LISTED_MAX = 1_000


@dataclass(frozen=True, slots=True)
class Switch:
    """A registered switch as its managers see it: never its key's secret, only the key's public id."""

    name: str
    node_login: str  # the node it acts at (its calls are those of this node's subtree)
    key_id: str
    notify_kind: str
    notify_url: str | None
    trusted_durations: bool
    created_at: datetime


def list_switches(
    database: Database, *, principal: Principal | None = None, limit: int = SWITCHES_LISTED_MAX
) -> list[Switch]:
    """The switches whose API keys the principal manages (``user:manage`` at their node), by name."""
    with database.reading() as connection:
        records = store.list_switches(connection, limit=min(limit, SWITCHES_LISTED_MAX))
        nodes = tree_store.nodes_by_id(connection, {record.node_id for record in records})
    found: list[Switch] = []
    for record in records:
        node = nodes[record.node_id]
        if principal is not None and decide(principal, Action.USER_MANAGE, place_of(node)) is not Decision.ALLOWED:
            continue
        found.append(
            Switch(
                record.name,
                node.login,
                record.key_id,
                record.notify_kind,
                record.notify_url,
                record.trusted_durations,
                record.created_at,
            )
        )
    return found


def set_switch_trusted_durations(
    database: Database, *, name: str, trusted: bool, principal: Principal | None = None
) -> bool:
    """Trust a switch with the durations it reports, or stop: a trusted switch's calls are charged every second
    it reports, past their grant and below a floor if so (docs/credit-control.md, "not trusted with money").

    That risk falls on every balance up to the provider, so it is the provider's call: authorized on the
    provider's node (``user:manage``), which nobody else sees. Audited as ``switch.trusted_durations``.
    Answers whether the switch was trusted before.
    """

    def use_case(connection: Connection) -> bool:
        before = store.switch_trusts_durations_named(connection, name, lock=True)
        key_id = store.switch_key_id(connection, name)
        key = access_store.find_api_key(connection, key_id) if key_id else None
        node = tree_store.get_node(connection, key.node_id) if key else None
        if before is None or node is None:
            raise NotFound("switch", name)
        authorize(principal, Action.USER_MANAGE, node)
        authorize(principal, Action.USER_MANAGE, present(tree_store.find_provider(connection), "the provider"))
        store.set_switch_trusted_durations(connection, name=name, trusted=trusted)
        audit(
            connection,
            principal,
            action="switch.trusted_durations",
            target_type="switch",
            target_id=name,
            node=node,
            before={"trusted_durations": before},
            after={"trusted_durations": trusted},
        )
        return before

    return database.run(use_case)


def rotate_switch_key(database: Database, *, name: str, principal: Principal | None = None) -> str:
    """Give a switch a new API key with the old one's node and actions, and revoke the old one at once.

    One transaction: the switch is never without a key, nor with two. The plaintext is shown this once.
    """
    new_key = credentials.new_api_key()
    now = utc_now()

    def use_case(connection: Connection) -> None:
        old_key_id = store.switch_key_id(connection, name)
        old = access_store.find_api_key(connection, old_key_id) if old_key_id else None
        node = tree_store.get_node(connection, old.node_id) if old else None
        if old is None or node is None:
            raise NotFound("switch", name)
        authorize(principal, Action.USER_MANAGE, node)
        key = access_store.insert_api_key(
            connection,
            key_id=new_key.key_id,
            secret_hash=new_key.secret_hash,
            node_id=node.id,
            role=old.role,
            actions=old.actions,
            name=old.name,
            created_by=principal.label if principal else "cli",
            now=now,
        )
        store.set_switch_api_key(connection, name=name, api_key_id=key.id)
        access_store.revoke_api_key(connection, old.key_id, now=now)
        audit(
            connection,
            principal,
            action="switch.rotate_key",
            target_type="api_key",
            target_id=key.key_id,
            node=node,
            before={"key_id": old.key_id},
            after={"key_id": key.key_id, "switch": name},
        )

    database.run(use_case)
    return new_key.plaintext
