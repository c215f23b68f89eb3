"""Spending caps of an organization's users, when the organization pays for their calls.

A cap is a ledger account of the user's with a floor: its credit limit is the cap, and every call of the
user reserves, extends, posts and releases on it at the organization's price, beside the organization's
own wallet (TigerBeetle's way of enforcing a limit: an account whose balance may not go below a bound).
So a cap cuts a call in real time exactly as a balance does, across any number of concurrent calls and
processes, and nothing is written by hand outside the ledger. What is spent under a cap is counted in the
user's ``spent`` account (no floor); the two move only between themselves, never into real money.

A new day (or month), in the organization's time zone, starts when the first call of the user needs its
cap: what the previous period posted is given back to the cap account (a ``cap_reset`` transfer), so its
balance is zero again; a call still up across midnight counts in the day that ends it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tollway.calls.payer import Floor
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, TransferKind, TransferRequest
from tollway.organizations import model, store
from tollway.organizations.model import Caps
from tollway.tree.model import Node

CAPS = (("day", AccountPurpose.SPENDING_DAY), ("month", AccountPurpose.SPENDING_MONTH))


def _cap_of(caps: Caps, period: str) -> int | None:
    return caps.day_micros if period == "day" else caps.month_micros


def _account(connection: Connection, user: Node, purpose: AccountPurpose, *, floor: bool, now: datetime) -> int:
    found = ledger_store.find_account_id(connection, node_id=user.id, purpose=purpose, currency=user.currency)
    if found is not None:
        return found
    return ledger_store.create_account(
        connection, node_id=user.id, purpose=purpose, currency=user.currency, floor=floor, now=now
    )


def _used_micros(connection: Connection, account_id: int) -> int:
    account = ledger_store.lock_accounts(connection, [account_id])[account_id]
    return account.debits_posted + account.debits_pending - account.credits_posted


def floors_of(connection: Connection, user: Node, organization: Node, *, now: datetime) -> tuple[Floor, ...]:
    """The user's caps as floors for a call starting ``now``: its accounts are opened on first need and a
    period that ended is closed first. Runs in a transaction of its own, before the call's."""
    member = store.get_member(connection, user.id, lock=True)
    if member is None or (member.caps.day_micros is None and member.caps.month_micros is None):
        return ()
    day, month = model.cap_periods(now, organization.time_zone)
    sink = _account(connection, user, AccountPurpose.SPENT, floor=False, now=now)
    floors: list[Floor] = []
    for period, purpose in CAPS:
        cap = _cap_of(member.caps, period)
        if cap is None:
            continue
        account_id = _account(connection, user, purpose, floor=True, now=now)
        current = day if period == "day" else month
        if (member.cap_day if period == "day" else member.cap_month) != current:
            _start_period(connection, user, account_id, sink, current, now)
            store.update_member(connection, user.id, now=now, **{f"cap_{period}": current})
        _set_cap(connection, account_id, cap)
        floors.append(Floor(f"{user.login}:{period}_cap", user.id, account_id, sink))
    return tuple(floors)


def _start_period(connection: Connection, user: Node, account_id: int, sink: int, period: str, now: datetime) -> None:
    """Give back to the cap what the period before posted: its balance is zero again."""
    account = ledger_store.lock_accounts(connection, [account_id, sink])[account_id]
    spent = account.debits_posted - account.credits_posted
    if spent > 0:
        request = TransferRequest(
            id=f"cap:{account_id}:{period}",
            amount_micros=spent,
            debit_account_id=sink,
            credit_account_id=account_id,
            kind=TransferKind.CAP_RESET,
            reference=f"cap:{user.login}",
        )
        ledger_store.execute(connection, [request], now=now)


def _set_cap(connection: Connection, account_id: int, cap: int) -> None:
    """The cap as the account's credit limit; never below what it already holds, so a cap lowered below
    today's spending leaves nothing to spend rather than an account below its floor."""
    ledger_store.set_credit_limit(connection, account_id, max(cap, _used_micros(connection, account_id)))


def apply_caps(connection: Connection, user: Node, caps: Caps) -> None:
    """A user's caps changed: its cap accounts (if it has them yet) follow at once."""
    for period, purpose in CAPS:
        cap = _cap_of(caps, period)
        found = ledger_store.find_account_id(connection, node_id=user.id, purpose=purpose, currency=user.currency)
        if found is not None and cap is not None:
            _set_cap(connection, found, cap)
