"""RADIUS in the Cisco VSA prepaid convention, as pure rules: return codes, call ids, attribute values.

Nothing here touches a socket or the database. The server turns packets into the values below and
the answers of credit control back into packets; these rules say how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from tollway.calls.model import CALL_SECONDS_MAX


class ReturnCode(IntEnum):
    """``h323-return-code`` values (Cisco, "RADIUS VSA Voice Implementation Guide", debit card return codes).

    Only the codes Tollway sends are listed; the gateway's IVR script picks its prompt by them.
    """

    SUCCESS = 0  # success, proceed
    INVALID_ACCOUNT = 1  # failed: invalid account number
    INVALID_PASSWORD = 2  # failed: invalid password (the PIN)
    ACCOUNT_IN_USE = 3  # failed: account in use
    ZERO_BALANCE = 4  # failed: zero balance
    CARD_EXPIRED = 5  # failed: card expired
    CREDIT_LIMIT = 6  # failed: credit limit
    USER_DENIED = 7  # failed: user denied
    SERVICE_NOT_AVAILABLE = 8  # failed: service not available
    NUMBER_BLOCKED = 9  # failed: called number blocked
    RETRIES_EXCEEDED = 10  # failed: number of retries exceeded
    INVALID_ARGUMENT = 11  # failed: invalid argument


# Credit control's refusal reasons (tollway.calls.service.SIP_CODES) and the access refusals of this
# interface, each to the one return code a gateway acts on.
RETURN_CODES: dict[str, ReturnCode] = {
    "account_unknown": ReturnCode.INVALID_ACCOUNT,
    "password_invalid": ReturnCode.INVALID_PASSWORD,
    "password_throttled": ReturnCode.RETRIES_EXCEEDED,
    "concurrent_calls_limit": ReturnCode.ACCOUNT_IN_USE,
    "insufficient_funds": ReturnCode.ZERO_BALANCE,
    "spending_cap_reached": ReturnCode.CREDIT_LIMIT,  # a user's own daily or monthly cap, not the money: a limit
    "account_suspended": ReturnCode.USER_DENIED,
    "account_closed": ReturnCode.USER_DENIED,
    "account_not_rated": ReturnCode.USER_DENIED,  # a reseller, agent or the provider makes no calls
    "account_blocked": ReturnCode.USER_DENIED,  # the PIN's login is below a suspended or closed node
    "no_tariff": ReturnCode.SERVICE_NOT_AVAILABLE,  # the chain is not priced: nothing to do with the number
    "no_rate": ReturnCode.NUMBER_BLOCKED,
    "number_invalid": ReturnCode.NUMBER_BLOCKED,
    "request_invalid": ReturnCode.INVALID_ARGUMENT,  # no account, no number or no usable session id
    "access_number_unknown": ReturnCode.SERVICE_NOT_AVAILABLE,
    "access_number_exclusive": ReturnCode.USER_DENIED,  # the IVR plays its own prompt for this one
    "pin_invalid": ReturnCode.INVALID_PASSWORD,
    "pin_required": ReturnCode.INVALID_PASSWORD,
    "pin_throttled": ReturnCode.RETRIES_EXCEEDED,
    "card_blocked": ReturnCode.USER_DENIED,
    "card_closed": ReturnCode.USER_DENIED,
    "card_expired": ReturnCode.CARD_EXPIRED,
}


def return_code_for(reason: str) -> ReturnCode:
    """The code for a refusal; one this table does not know is a request the gateway got wrong."""
    return RETURN_CODES.get(reason, ReturnCode.INVALID_ARGUMENT)


# -- Cisco VSA values ----------------------------------------------------------------------------------

VSA_VALUE_LENGTH_MAX = 253  # what fits in one attribute


def vsa_value(name: str, raw: str) -> str:
    """The value of a Cisco h323 VSA, which gateways send as ``name=value`` or, some of them, bare."""
    prefix = f"{name}="
    return raw[len(prefix) :] if raw.startswith(prefix) else raw


def cisco_vsa(name: str, value: object) -> str:
    """A Cisco h323 VSA as Cisco gateways expect it: the attribute's own name, ``=``, the value."""
    return f"{name}={value}"


# -- call ids ------------------------------------------------------------------------------------------

CALL_ID_LENGTH_MAX = 128  # tollway.calls.service.CALL_ID_LENGTH_MAX
# tollway.calls.service.CALL_ID_PATTERN: visible ASCII without spaces, "/", "?", "#" or "%"
_CALL_ID_CHARACTERS = re.compile(r"^[^\x00-\x20\x7f-\U0010ffff/?#%]+$")
# Cisco's h323-conf-id: four groups of 8 hex digits separated by single spaces ("3A9C5E14 2B9611D5 ...").
_CONF_ID_GROUPS = re.compile(r"^[0-9A-Fa-f]+(?: [0-9A-Fa-f]+)*$")

# A call id says where it came from, so that a disconnect can name the session the way the gateway did.
CONF_ID_GROUPS_PREFIX = "h323-"  # an h323-conf-id of hex groups, the spaces turned into "-"
CONF_ID_PREFIX = "h323id-"  # any other h323-conf-id that is a valid call id as it is
SESSION_ID_PREFIX = "acct-"  # no usable h323-conf-id: the Acct-Session-Id, as it is


@dataclass(frozen=True, slots=True)
class SessionKey:
    """How the gateway named a call: its h323-conf-id, or else its Acct-Session-Id."""

    conf_id: str | None = None
    session_id: str | None = None


def call_id_of(key: SessionKey) -> str | None:
    """Credit control's call id for a gateway's session, or None when neither id can make one.

    The h323-conf-id is the same on every leg and every record of a call, so it is preferred; the
    Acct-Session-Id serves gateways that send none (or one no call id can carry). The mapping is
    reversible (``session_of``), so a disconnect names the session as the gateway did.
    """
    conf_id = key.conf_id.strip() if key.conf_id else ""
    session_id = key.session_id.strip() if key.session_id else ""
    candidates: list[str] = []
    if conf_id and _CONF_ID_GROUPS.match(conf_id):
        candidates.append(CONF_ID_GROUPS_PREFIX + conf_id.replace(" ", "-"))
    elif conf_id and _CALL_ID_CHARACTERS.match(conf_id):
        candidates.append(CONF_ID_PREFIX + conf_id)
    if session_id and _CALL_ID_CHARACTERS.match(session_id):
        candidates.append(SESSION_ID_PREFIX + session_id)
    return next((call_id for call_id in candidates if len(call_id) <= CALL_ID_LENGTH_MAX), None)


def session_of(call_id: str) -> SessionKey | None:
    """The gateway's own name of a call made by ``call_id_of``; None for a call id it did not make."""
    if call_id.startswith(CONF_ID_PREFIX):
        return SessionKey(conf_id=call_id[len(CONF_ID_PREFIX) :])
    if call_id.startswith(CONF_ID_GROUPS_PREFIX):
        return SessionKey(conf_id=call_id[len(CONF_ID_GROUPS_PREFIX) :].replace("-", " "))
    if call_id.startswith(SESSION_ID_PREFIX):
        return SessionKey(session_id=call_id[len(SESSION_ID_PREFIX) :])
    return None


# -- access ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardCredit:
    """What a calling card's first stage answers: the money it can spend, and the prompts' language."""

    amount: Decimal  # the available balance, rounded down to the currency's precision
    currency: str
    language: str


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """What an Access-Request gets: accepted for ``credit_seconds``, or rejected with a return code."""

    accepted: bool
    return_code: ReturnCode
    credit_seconds: int | None  # the hard limit the gateway enforces from the answer; None when rejected
    message: str
    credit: CardCredit | None = None  # a card's first stage: accepted with its amount and no credit time


def access_decision(answer: dict[str, Any]) -> AccessDecision:
    """Credit control's authorize answer as the gateway reads it.

    ``h323-credit-time`` is ``max_seconds``, the longest the poorest level can pay for (capped): the
    gateway's own timeout. Grants within it are reserved and extended by credit control as the call runs.
    """
    if answer["status"] == "authorized":
        seconds = int(answer["max_seconds"])
        return AccessDecision(True, ReturnCode.SUCCESS, seconds, f"authorized for {seconds} s")
    reason = str(answer["reason"])
    return AccessDecision(False, return_code_for(reason), None, str(answer.get("message") or reason))


def refusal(reason: str, message: str) -> AccessDecision:
    return AccessDecision(False, return_code_for(reason), None, message)


def card_credit(credit: CardCredit) -> AccessDecision:
    return AccessDecision(True, ReturnCode.SUCCESS, None, f"card holds {credit.amount} {credit.currency}", credit)


# -- a calling card's two stages -------------------------------------------------------------------------

# The access number dialed, as a Cisco Tcl IVR script passes it: ``Cisco-AVPair = "h323-ivr-out=
# access-number:+18005550100"`` (h323-ivr-out is the AV pair by which Cisco's IVR scripts send the
# server their own values). The first stage may name it as Called-Station-Id (the DNIS) instead.
IVR_OUT_PREFIX = "h323-ivr-out="
ACCESS_NUMBER_TAG = "access-number:"


def access_number_in(avpairs: list[str]) -> str | None:
    """The access number among a request's Cisco-AVPair values; None when none names one."""
    for pair in avpairs:
        value = pair.strip()
        if value.startswith(IVR_OUT_PREFIX):
            value = value[len(IVR_OUT_PREFIX) :]
            if value.startswith(ACCESS_NUMBER_TAG):
                return value[len(ACCESS_NUMBER_TAG) :].strip()
    return None


# -- accounting --------------------------------------------------------------------------------------


class AccountingStatus(IntEnum):
    """Acct-Status-Type (RFC 2866 5.1, RFC 2869)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


END_REASON_LENGTH_MAX = 48  # what credit control keeps of an end reason
# The longest Acct-Session-Time passed on to credit control, which takes no more (calls.service.end_call):
# a Stop reporting more ends its call at this, rather than being refused and losing the call's end. What
# is charged is credit control's to bound (at most what was granted).
REPORTED_SECONDS_MAX = 10 * CALL_SECONDS_MAX


def reported_seconds(session_seconds: int | None) -> int:
    """Acct-Session-Time as credit control takes it: 0 when absent, at most ``REPORTED_SECONDS_MAX``."""
    return min(max(0, session_seconds or 0), REPORTED_SECONDS_MAX)


def end_reason(disconnect_cause: str | None, terminate_cause: int | None) -> str:
    """Why the gateway ended a call, for the call's record: its h323-disconnect-cause (a Q.850 cause in
    hex, "10" being normal clearing) or else its Acct-Terminate-Cause (RFC 2866 5.10)."""
    if disconnect_cause:
        return cisco_vsa("h323-disconnect-cause", disconnect_cause)[:END_REASON_LENGTH_MAX]
    if terminate_cause is not None:
        return f"acct-terminate-cause={terminate_cause}"
    return "normal"


BILLED_CALL_ORIGIN = "originate"  # what a disconnect names as the leg to end


def billed_leg(call_origin: str | None) -> bool:
    """Whether an accounting record is of the leg Tollway bills.

    A Cisco gateway accounts for each leg of a call under one h323-conf-id: the "answer" leg it received
    (from the caller; its time includes any IVR and ringing) and the "originate" leg it placed towards
    the number. The originate leg is the call that is billed; a record without h323-call-origin (a gateway
    that accounts once per call) is billed too.
    """
    return call_origin is None or call_origin.strip().lower() != "answer"
