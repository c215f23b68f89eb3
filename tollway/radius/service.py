"""The RADIUS interface's use cases: one Access-Request or Accounting-Request in, what to answer out.

Each request is turned into a call of the credit-control service (``tollway.calls.service``), made with
the principal of the switch the NAS acts as, so a NAS below a reseller controls that reseller's calls
only. Sockets and packets are the server's business (``tollway.radius.server``); this module sees
plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollway.access import service as access
from tollway.access.model import Principal
from tollway.calls import service as calls
from tollway.calls import store as calls_store
from tollway.calls.service import DEFAULT_SETTINGS, CallRequest, CallSettings, CallUnknown
from tollway.errors import Refusal
from tollway.radius.model import (
    AccessDecision,
    AccountingStatus,
    SessionKey,
    access_decision,
    billed_leg,
    call_id_of,
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


def authorize(
    database: Database,
    switch: Principal,
    request: AccessRequest,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> AccessDecision:
    """Authorize the call, after its PIN if one was sent: accepted for its longest length, or refused."""
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
