"""The RADIUS interface's use cases: one Access-Request or Accounting-Request in, what to answer out.

Each request is turned into a call of the credit-control service (``tollway.calls.service``), made with
the principal of the switch the NAS acts as, so a NAS below a reseller controls that reseller's calls
only. Sockets and packets are the server's business (``tollway.radius.server``); this module sees
plain values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tollway.access import service as access
from tollway.access.model import Principal
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls import store as calls_store
from tollway.calls.service import DEFAULT_SETTINGS, CallRequest, CallSettings, CallUnknown
from tollway.cards import payers as card_payers
from tollway.cards import store as cards_store
from tollway.cards.model import pin_digest
from tollway.cards.payers import CardCall
from tollway.clock import utc_now
from tollway.display import Rounding, rounded
from tollway.errors import Refusal
from tollway.lines.model import check_e164
from tollway.radius.model import (
    AccessDecision,
    AccountingStatus,
    CardCredit,
    SessionKey,
    access_decision,
    billed_leg,
    call_id_of,
    card_credit,
    end_reason,
    refusal,
    reported_seconds,
)
from tollway.store.database import Database
from tollway.tree import store as tree_store


def switch_principal(database: Database, name: str) -> Principal | None:
    """The principal of the switch ``name`` (its API key's), or None if the switch cannot act now: it is
    not registered, its key is revoked, or its node is suspended or closed."""
    with database.reading() as connection:
        key_id = calls_store.switch_key_id(connection, name)
    if key_id is None:
        return None
    try:
        return access.principal_of_api_key(database, key_id=key_id)
    except Refusal:
        return None


@dataclass(frozen=True, slots=True)
class AccessRequest:
    account: str | None  # User-Name
    caller: str | None  # Calling-Station-Id
    callee: str | None  # Called-Station-Id
    key: SessionKey  # h323-conf-id, Acct-Session-Id
    password: str | None = None  # the PIN, decrypted from User-Password; None when none was sent
    chap: bool = False  # a CHAP-Password was sent: a PIN Tollway cannot check
    access_number: str | None = None  # a card call's, from Cisco-AVPair "h323-ivr-out=access-number:..."


def authorize(
    database: Database,
    switch: Principal,
    request: AccessRequest,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    pin_key: Callable[[], bytes] | None = None,
) -> AccessDecision:
    """Authorize the call, after its PIN if one was sent: accepted for its longest length, or refused.

    A request that names an access number is a calling card's (``authorize_card``); ``pin_key`` gives the
    installation's PIN digest key (tollway.cards.service.pin_key), asked for only when a card's PIN comes.
    """
    stage = card_stage(database, request)
    if stage is not None:
        return authorize_card(
            database, switch, request, stage, settings=settings, now=now or utc_now(), pin_key=pin_key
        )
    call_id = call_id_of(request.key)
    if call_id is None or not request.account or not request.callee:
        return refusal("request_invalid", "an Access-Request needs User-Name, Called-Station-Id and h323-conf-id")
    if request.chap:
        return refusal("password_invalid", "a PIN is checked only as User-Password, not CHAP-Password")
    if request.password is not None:
        wrong = _check_pin(database, request.account, request.password)
        if wrong is not None:
            return wrong
    call = CallRequest(call_id, request.account, request.caller or "", request.callee)
    try:
        answer = calls.authorize_call(database, call, principal=switch, settings=settings, now=now)
    except Refusal as refused:
        return refusal(refused.reason, refused.message)
    return access_decision(answer)


def _check_pin(database: Database, account: str, pin: str) -> AccessDecision | None:
    """None if ``pin`` is the password of the login named like the account and belonging to it.

    Failed attempts count against that login as any failed login does, and throttle it the same way.
    """
    try:
        principal = access.login_with_password(database, login=account, password=pin)
    except Refusal as refused:
        if refused.reason == "login_throttled":
            return refusal("password_throttled", "too many wrong PINs: try again later")
        if refused.reason == "account_blocked":
            return refusal("account_blocked", f"{account} or an account above it is suspended or closed")
        return refusal("password_invalid", "wrong account or PIN")
    with database.reading() as connection:
        node = tree_store.find_node(connection, account)
    if node is None or principal.place.node_id != node.id:
        return refusal("password_invalid", "wrong account or PIN")  # the login is someone else's
    return None


# -- calling cards: Cisco's debit-card IVR, in two stages ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardStage:
    access_number: str  # as the request names it (E.164 when it is a number at all)
    destination: str | None  # the second stage's Called-Station-Id; None in the first stage


def _e164(number: str | None) -> str | None:
    if number is None:
        return None
    try:
        return check_e164(number)
    except Refusal:
        return None


def card_stage(database: Database, request: AccessRequest) -> CardStage | None:
    """Which stage of a card call the request is, or None when it is an account's.

    A card's request names its access number in Cisco-AVPair (``h323-ivr-out=access-number:...``), or is
    the first stage with the access number as its Called-Station-Id (the number the holder dialed). Its
    second stage has the destination as Called-Station-Id, and the access number in Cisco-AVPair.
    """
    callee = _e164(request.callee)
    if request.access_number is not None:
        named = _e164(request.access_number) or request.access_number
        first = not request.callee or callee == named
        return CardStage(named, None if first else request.callee)
    if callee is None:
        return None
    with database.reading() as connection:
        number = cards_store.find_access_number(connection, callee)
    return None if number is None else CardStage(callee, None)


def authorize_card(
    database: Database,
    switch: Principal,
    request: AccessRequest,
    stage: CardStage,
    *,
    settings: CallSettings,
    now: datetime,
    pin_key: Callable[[], bytes] | None,
) -> AccessDecision:
    """A calling card's call, as Cisco's debit-card IVR asks for it.

    First stage (no destination): the card (User-Name its serial, User-Password its PIN, or no PIN and a
    Calling-Station-Id registered to a card) is accepted with what it can spend (h323-credit-amount) and
    the language to prompt in. Second stage (the destination as Called-Station-Id): the call is authorized
    as any call of the card's account, for the seconds the engine grants. Both go through the cards'
    resolution (tollway/cards/payers.py): every PIN is counted before it is looked at, locked callers are
    refused whatever they send, exactly as over HTTP.
    """
    call_id = call_id_of(request.key)
    if stage.destination is not None and call_id is None:
        return refusal("request_invalid", "a card's second Access-Request needs an h323-conf-id or Acct-Session-Id")
    if request.chap:
        return refusal("pin_invalid", "a PIN is checked only as User-Password, not CHAP-Password")
    pin = request.password or None  # an empty User-Password is no PIN: the caller's number is asked for
    digest = None
    if pin is not None:
        if pin_key is None:
            return refusal("request_invalid", "this server takes no card PINs")
        digest = pin_digest(pin_key(), pin)
    card = CardCall(stage.access_number, digest)
    payer = card_payers.resolve(database, card=card, caller=request.caller or "", principal=switch, now=now)
    refused_call = None
    if stage.destination is not None and call_id is not None:  # a refused second stage is a refused call
        refused_call = CallRequest(call_id, "", request.caller or "", stage.destination)
    if isinstance(payer, card_payers.Refused):
        message = calls.MESSAGES.get(payer.reason, payer.reason)
        return _card_refused(database, switch, refused_call, payer.reason, message, now)
    if pin is not None and not _names_card(database, payer.account, request.account):
        return _card_refused(database, switch, refused_call, "pin_invalid", "wrong card number or PIN", now)
    if stage.destination is None:
        return _card_credit(database, payer.account, stage.access_number)
    assert call_id is not None  # checked above
    call = CallRequest(call_id, payer.account, request.caller or "", stage.destination)
    try:
        answer = calls.authorize_call(database, call, principal=switch, settings=settings, now=now)
    except Refusal as refused:
        return refusal(refused.reason, refused.message)
    return access_decision(answer)


def _card_refused(
    database: Database, switch: Principal, call: CallRequest | None, reason: str, message: str, now: datetime
) -> AccessDecision:
    """A card refused before the engine: at the second stage the call is recorded refused, with no account,
    as over HTTP (the first stage is no call yet: a balance enquiry)."""
    if call is not None:
        with contextlib.suppress(Refusal):  # its call id names another call already: that one is left as it is
            calls.record_card_refusal(database, call, reason, principal=switch, now=now)
    return refusal(reason, message)


def _names_card(database: Database, login: str, user_name: str | None) -> bool:
    """Whether User-Name is the card's serial, as printed on it (any case). Never the PIN: User-Name is
    logged, and a PIN must never be."""
    with database.reading() as connection:
        card = cards_store.find_card_by_login(connection, login)
    name = (user_name or "").strip()
    return card is not None and name.upper() == card.serial.upper()


def _card_credit(database: Database, login: str, access_number: str) -> AccessDecision:
    """The first stage's answer: the card's available money, rounded down to its currency's precision, and
    the access number's prompt language (else the card's account's)."""
    balance = balances.get_balance(database, login=login)
    amount = rounded(balance.available_micros, balance.currency, Rounding.DOWN)
    if amount <= 0:
        return refusal("insufficient_funds", "the card has no money left")
    with database.reading() as connection:
        number = cards_store.find_access_number(connection, access_number)
        node = tree_store.find_node(connection, login)
    language = number.language if number is not None and number.language else (node.language if node else "en")
    return card_credit(CardCredit(amount, balance.currency, language))


@dataclass(frozen=True, slots=True)
class AccountingRequest:
    status: int | None  # Acct-Status-Type
    key: SessionKey  # h323-conf-id, Acct-Session-Id
    account: str | None = None  # User-Name
    caller: str | None = None  # Calling-Station-Id
    callee: str | None = None  # Called-Station-Id
    session_seconds: int | None = None  # Acct-Session-Time: answered seconds so far, or in all at Stop
    call_origin: str | None = None  # h323-call-origin: which leg of the call the record is about
    disconnect_cause: str | None = None  # h323-disconnect-cause
    terminate_cause: int | None = None  # Acct-Terminate-Cause


def record(
    database: Database,
    switch: Principal,
    request: AccountingRequest,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> str:
    """Apply an accounting record to its call, and say what was done (for the log). Every outcome is
    final: the gateway gets its Accounting-Response, and a retry of the record changes nothing.

    Start answers the call; Interim-Update is an update (its sequence is the elapsed seconds, which only
    grow); Stop ends the call, charged for Acct-Session-Time. A call credit control has not heard of (the
    gateway authorized it elsewhere, or not at all) is authorized first, as answered.
    """
    try:
        status = AccountingStatus(request.status or 0)
    except ValueError:
        return "status_ignored"
    if status in (AccountingStatus.ACCOUNTING_ON, AccountingStatus.ACCOUNTING_OFF):
        return "gateway_restarted"  # its calls, if any, are swept when their grants run out
    if not billed_leg(request.call_origin):
        return "leg_not_billed"
    call_id = call_id_of(request.key)
    if call_id is None:
        return "no_session_id"
    try:
        try:
            _apply(database, switch, call_id, status, request, settings, now)
        except CallUnknown:
            if not request.account or not request.callee:
                return "call_unknown"
            call = CallRequest(call_id, request.account, request.caller or "", request.callee, answered=True)
            answer = calls.authorize_call(database, call, principal=switch, settings=settings, now=now)
            if answer["status"] != "authorized":
                return f"refused_{answer['reason']}"
            _apply(database, switch, call_id, status, request, settings, now)
            return f"{status.name.lower()}_authorized_late"
    except Refusal as refused:
        return f"refused_{refused.reason}"
    return status.name.lower()


def _apply(
    database: Database,
    switch: Principal,
    call_id: str,
    status: AccountingStatus,
    request: AccountingRequest,
    settings: CallSettings,
    now: datetime | None,
) -> None:
    seconds = reported_seconds(request.session_seconds)
    if status is AccountingStatus.START:
        calls.answer_call(database, call_id, principal=switch, now=now)
    elif status is AccountingStatus.INTERIM_UPDATE:
        calls.update_call(
            database, call_id, sequence=seconds, elapsed_seconds=seconds, principal=switch, settings=settings, now=now
        )
    else:
        reason = end_reason(request.disconnect_cause, request.terminate_cause)
        calls.end_call(
            database, call_id, duration_seconds=seconds, reason=reason, principal=switch, settings=settings, now=now
        )
