"""Recurring charges: each plan's fee at the start of each of its periods, through the ledger.

The fee moves from the client's wallet to the revenue account of the plan's owner (who sold it: the
client's owner), kind ``subscription``, under the id ``plan:<subscription id>:<period start>``. The
same period charged twice is the same transfer twice, which the ledger records once.

``renew_due`` is the scheduler, run by the keeper every tick and by ``tollway plan renew``. Each
period is charged in its own transaction, under the subscription's row lock, re-checked under it, so
any number of Tollway processes may run it at once: a period is charged exactly once. A fee the client
cannot pay suspends the plan, not the account: its seconds stop serving calls, which are charged
money as if there were no plan, and it is tried again every ``PLAN_RETRY_SECONDS`` until paid.

Locking: the client's wallet and the seller's revenue account first (the order credit control takes
them in before the plan), then the subscription with ``SKIP LOCKED``: a plan another transaction holds
is left for a later run, and a lock that never waits cannot take part in a deadlock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Final

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.errors import present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import Account, AccountPurpose, TransferError, TransferKind, TransferRequest
from tollway.ledger.store import TransferRefused
from tollway.rating import store
from tollway.rating.plans import (
    ACCOUNT_CLOSED,
    PLAN_RETRY_SECONDS,
    PLAN_UNPAID,
    PeriodCharge,
    Plan,
    Subscription,
    SubscriptionStatus,
    fee_transfer_id,
    next_charge,
)
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Node, Status

RENEWALS_PER_RUN_MAX = 1_000  # periods charged (or tried) by one run unless told otherwise
DUE_PAGE_SIZE = 200  # due subscriptions listed per query


class RenewalOutcome(StrEnum):
    RENEWED = "renewed"  # the next period is paid
    RESUMED = "resumed"  # a plan suspended for its fee is paid again: usable from now
    SUSPENDED = "suspended"  # the fee could not be paid: the plan is suspended, the account is not
    UNPAID = "unpaid"  # a suspended plan tried again, still unpaid
    ENDED = "ended"  # the account is closed: its plan ends instead of being charged


@dataclass(frozen=True, slots=True)
class Renewal:
    """What one run did to one period of one subscription."""

    subscription_id: int
    login: str
    plan: str
    currency: str
    amount_micros: int  # charged, or (suspended, unpaid) what could not be
    period_start: datetime
    period_end: datetime
    outcome: RenewalOutcome
    transfer_id: str | None = None  # None when nothing was charged


@dataclass(frozen=True, slots=True)
class RenewalReport:
    renewals: tuple[Renewal, ...]
    busy: int = 0  # due subscriptions another transaction held: a later run takes them
    more: bool = False  # stopped by the limit or the time budget with more due

    def of(self, outcome: RenewalOutcome) -> list[Renewal]:
        return [renewal for renewal in self.renewals if renewal.outcome is outcome]


# -- one period's fee -------------------------------------------------------------------------------


def fee_request(
    subscription_id: int, plan: Plan, start: datetime, *, wallet_id: int, revenue_id: int
) -> TransferRequest:
    return TransferRequest(
        id=fee_transfer_id(subscription_id, start),
        amount_micros=plan.fee_micros,
        debit_account_id=wallet_id,
        credit_account_id=revenue_id,
        kind=TransferKind.SUBSCRIPTION,
        reference=plan.name,
    )


def charge_fee(
    connection: Connection, request: TransferRequest, *, now: datetime, locked: Mapping[int, Account] | None = None
) -> bool:
    """Record one period's fee; False (and nothing written) if the wallet cannot pay it. A fee of 0 is paid.

    Only insufficient funds is an answer; any other refusal is a bug and raises. A savepoint keeps the
    rest of the transaction (the suspension that follows) whatever the ledger did before refusing.
    """
    if not request.amount_micros:
        return True
    try:
        with connection.begin_nested():
            ledger_store.execute(connection, [request], now=now, locked=dict(locked) if locked else None)
    except TransferRefused as refused:
        if refused.failure.error is not TransferError.INSUFFICIENT_FUNDS:
            raise
        return False
    return True


# -- the scheduler ----------------------------------------------------------------------------------


class _Busy:
    """Another transaction holds the subscription."""


_BUSY: Final = _Busy()


@dataclass(slots=True)
class _Run:
    now: datetime
    limit: int
    deadline: float
    renewals: list[Renewal] = field(default_factory=list)
    busy: int = 0

    def exhausted(self) -> bool:
        return len(self.renewals) >= self.limit or time.monotonic() >= self.deadline


def renew_due(
    database: Database,
    *,
    now: datetime | None = None,
    budget_seconds: float | None = None,
    limit: int = RENEWALS_PER_RUN_MAX,
    on_progress: Callable[[int], None] | None = None,
) -> RenewalReport:
    """Charge every plan whose period has ended, each period in its own transaction. Safe in many processes.

    An active plan behind by several periods (the scheduler was down) is charged each one in order and
    stops at the first it cannot pay. At most ``limit`` periods and about ``budget_seconds`` per run: the
    next run picks up where this one stopped (``more``). ``on_progress``: subscriptions visited so far.
    """
    run = _Run(
        now=now or utc_now(),
        limit=limit,
        deadline=time.monotonic() + (budget_seconds if budget_seconds is not None else 10.0**9),
    )
    after_id, visited = 0, 0
    while True:
        with database.reading() as connection:
            ids = store.due_subscriptions(connection, now=run.now, after_id=after_id, limit=DUE_PAGE_SIZE)
        for subscription_id in ids:
            if run.exhausted():
                return RenewalReport(tuple(run.renewals), run.busy, more=True)
            if not _catch_up(database, subscription_id, run):
                return RenewalReport(tuple(run.renewals), run.busy, more=True)
            after_id, visited = subscription_id, visited + 1
            if on_progress is not None:
                on_progress(visited)
        if len(ids) < DUE_PAGE_SIZE:
            return RenewalReport(tuple(run.renewals), run.busy, more=False)


def count_due(database: Database, *, now: datetime | None = None) -> int:
    """How many subscriptions have a fee due (or a suspended fee to try again) at ``now``."""
    with database.reading() as connection:
        return store.count_due_subscriptions(connection, now=now or utc_now())


def _catch_up(database: Database, subscription_id: int, run: _Run) -> bool:
    """Charge one subscription's due periods in order; False if the run ran out before it was done."""
    while True:
        outcome = database.run(partial(_renew_once, subscription_id=subscription_id, now=run.now))
        if isinstance(outcome, _Busy):
            run.busy += 1
            return True
        if outcome is None:
            return True
        run.renewals.append(outcome)
        if outcome.outcome is not RenewalOutcome.RENEWED or outcome.period_end > run.now:
            return True
        if run.exhausted():
            return False


def _renew_once(connection: Connection, subscription_id: int, now: datetime) -> Renewal | _Busy | None:
    """Charge the next due period of one subscription; None if nothing is due (any more)."""
    seen = store.get_subscription(connection, subscription_id)
    if seen is None or not seen.due(now):
        return None
    client = present(tree_store.get_node(connection, seen.node_id), f"account of subscription {seen.id}")
    seller = present(tree_store.get_node(connection, seen.plan_owner_id), f"owner of plan {seen.plan.name}")
    wallet_id = account_id(connection, client, AccountPurpose.WALLET)
    revenue_id = account_id(connection, seller, AccountPurpose.REVENUE, seen.plan.currency)
    locked = ledger_store.lock_accounts(connection, (wallet_id, revenue_id))
    subscription = store.get_subscription(connection, subscription_id, lock_if_free=True)
    if subscription is None:
        return _BUSY
    charge = next_charge(subscription, now)
    if charge is None:
        return None  # another process renewed it meanwhile
    if client.status is Status.CLOSED:
        return _end(connection, subscription, client, charge)
    request = fee_request(subscription.id, subscription.plan, charge.start, wallet_id=wallet_id, revenue_id=revenue_id)
    if charge_fee(connection, request, now=now, locked=locked):
        return _renewed(connection, subscription, client, charge, request)
    return _unpaid(connection, subscription, client, charge, now)


def _renewed(
    connection: Connection, subscription: Subscription, client: Node, charge: PeriodCharge, request: TransferRequest
) -> Renewal:
    store.update_subscription(
        connection,
        subscription.id,
        status=str(SubscriptionStatus.ACTIVE),
        status_reason=None,
        period_start=charge.start,
        period_end=charge.end,
        seconds_left=charge.allowance_seconds,
    )
    renewal = _renewal(
        subscription, client, charge, RenewalOutcome.RESUMED if charge.resumes else RenewalOutcome.RENEWED, request.id
    )
    _audit(connection, client, "plan.resume" if charge.resumes else "plan.renew", renewal)
    return renewal


def _unpaid(
    connection: Connection, subscription: Subscription, client: Node, charge: PeriodCharge, now: datetime
) -> Renewal:
    """Suspend the plan (not the account) until its fee is paid; tried again every PLAN_RETRY_SECONDS.

    A suspended plan keeps the start of the period it could not pay, and its period end says when the
    next attempt is due. A plan already suspended is only rescheduled: nothing new to audit.
    """
    retry_at = now.replace(microsecond=0) + timedelta(seconds=PLAN_RETRY_SECONDS)
    if subscription.status is SubscriptionStatus.SUSPENDED:
        store.update_subscription(connection, subscription.id, period_end=retry_at)
        return _renewal(subscription, client, charge, RenewalOutcome.UNPAID, None)
    store.update_subscription(
        connection,
        subscription.id,
        status=str(SubscriptionStatus.SUSPENDED),
        status_reason=PLAN_UNPAID,
        period_start=charge.start,
        period_end=retry_at,
        seconds_left=0,
    )
    renewal = _renewal(subscription, client, charge, RenewalOutcome.SUSPENDED, None)
    _audit(connection, client, "plan.suspend", renewal, reason=PLAN_UNPAID)
    return renewal


def _end(connection: Connection, subscription: Subscription, client: Node, charge: PeriodCharge) -> Renewal:
    """A closed account's plan ends where its last paid period did; nothing more is charged."""
    store.update_subscription(
        connection,
        subscription.id,
        status=str(SubscriptionStatus.ENDED),
        status_reason=ACCOUNT_CLOSED,
        seconds_left=0,
    )
    renewal = _renewal(subscription, client, charge, RenewalOutcome.ENDED, None)
    _audit(connection, client, "plan.end", renewal, reason=ACCOUNT_CLOSED)
    return renewal


def _renewal(
    subscription: Subscription, client: Node, charge: PeriodCharge, outcome: RenewalOutcome, transfer_id: str | None
) -> Renewal:
    plan = subscription.plan
    charged = outcome in (RenewalOutcome.RENEWED, RenewalOutcome.RESUMED)
    return Renewal(
        subscription_id=subscription.id,
        login=client.login,
        plan=plan.name,
        currency=plan.currency,
        amount_micros=0 if outcome is RenewalOutcome.ENDED else plan.fee_micros,
        period_start=charge.start,
        period_end=charge.end,
        outcome=outcome,
        transfer_id=transfer_id if charged and plan.fee_micros else None,
    )


def _audit(connection: Connection, client: Node, action: str, renewal: Renewal, **extra: Any) -> None:
    audit(
        connection,
        None,  # the scheduler: no one asked
        action=action,
        target_type="node",
        target_id=client.login,
        node=client,
        after={
            "plan": renewal.plan,
            "amount_micros": renewal.amount_micros,
            "period_start": renewal.period_start.isoformat(),
            "period_end": renewal.period_end.isoformat(),
            "transfer": renewal.transfer_id,
            **extra,
        },
    )
