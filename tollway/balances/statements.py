"""What an account's wallet went through: its money movements (top-ups, payments, refunds, plan fees…) and its
monthly statement (opening balance, every movement but calls, the calls as one total, closing balance).

Only posted transfers count: a call's reservation (a pending transfer) moves no balance, so a statement
shows a call once, at its cost, when it ends, never its reservation as a second charge. Amounts are signed
from the wallet's side: money in is positive, money out negative. Reading takes ``balance:read``: a
statement shows the total of the calls, never their details (the call history is ``calls:read``).

A seller's margin on calls for a period (``call_margin``): what the level below paid it for calls (its
revenue account's call charges), what it paid the level above for them (its wallet's call charges), and
the difference, all posted transfers, exact, in its currency. Revenue its customers paid in other currencies
is shown apart, by currency, and left out of the margin: no exchange rate is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from tollway.access.model import Action, Principal, authorize
from tollway.balances.service import account_id
from tollway.errors import Refusal
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Transfer, TransferKind
from tollway.store.database import Database
from tollway.tree.model import Node, NodeKind
from tollway.tree.service import require_node

MOVEMENTS_PAGE_MAX = 200
STATEMENT_LINES_MAX = 2_000  # movements other than calls in one month; past it the statement says it is cut
CALLS = (TransferKind.CALL_CHARGE,)
MONTHS_BACK_MAX = 120  # how far back a statement may be asked for


@dataclass(frozen=True, slots=True)
class Movement:
    transfer_id: str
    at: datetime
    kind: TransferKind
    reference: str | None
    amount_micros: int  # signed: into the wallet positive, out of it negative


@dataclass(frozen=True, slots=True)
class MovementPage:
    login: str
    currency: str
    movements: list[Movement]
    next_before: tuple[datetime, str] | None  # where the next (older) page starts; None at the end


@dataclass(frozen=True, slots=True)
class Statement:
    login: str
    name: str
    currency: str
    time_zone: str
    month: date  # its first day
    period_start: datetime  # the month's first instant in the account's time zone
    period_end: datetime
    opening_micros: int
    movements: list[Movement]  # oldest first, calls left out
    calls_count: int
    calls_micros: int  # signed: the calls' total cost is negative
    closing_micros: int
    complete: bool  # False when more than STATEMENT_LINES_MAX movements had to be left out

    @property
    def last_day(self) -> datetime:
        """An instant of the month's last day (its end is the next month's first instant)."""
        return self.period_end - timedelta(hours=12)

    @property
    def money_in_micros(self) -> int:
        return sum(m.amount_micros for m in self.movements if m.amount_micros > 0)

    @property
    def money_out_micros(self) -> int:
        return sum(m.amount_micros for m in self.movements if m.amount_micros < 0) + self.calls_micros


def _movement(transfer: Transfer, wallet_id: int) -> Movement:
    sign = 1 if transfer.credit_account_id == wallet_id else -1
    return Movement(transfer.id, transfer.created_at, transfer.kind, transfer.reference, sign * transfer.amount_micros)


def _wallet(connection: Connection, principal: Principal | None, login: str) -> tuple[Node, int]:
    node = require_node(connection, login)
    authorize(principal, Action.BALANCE_READ, node)
    return node, account_id(connection, node, AccountPurpose.WALLET)


def money_movements(
    database: Database,
    principal: Principal | None,
    *,
    login: str,
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> MovementPage:
    """Top-ups, payments, refunds, adjustments, plan fees and the like, newest first, calls left out."""
    if not 1 <= limit <= MOVEMENTS_PAGE_MAX:
        raise Refusal("limit_invalid", f"a page holds 1 to {MOVEMENTS_PAGE_MAX} movements")
    with database.reading() as connection:
        node, wallet_id = _wallet(connection, principal, login)
        found = ledger_store.posted_movements(connection, wallet_id, limit=limit, before=before, leaving_out=CALLS)
    movements = [_movement(t, wallet_id) for t in found]
    next_before = (found[-1].created_at, found[-1].id) if len(found) == limit else None
    return MovementPage(node.login, node.currency, movements, next_before)


def month_bounds(month: date, time_zone: str) -> tuple[datetime, datetime]:
    """The first instant of ``month`` and of the month after, in ``time_zone``."""
    zone = ZoneInfo(time_zone)
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(first, time(), zone), datetime.combine(following, time(), zone)


def monthly_statement(database: Database, principal: Principal | None, *, login: str, month: date) -> Statement:
    with database.reading() as connection:
        node, wallet_id = _wallet(connection, principal, login)
        start, end = month_bounds(month, node.time_zone)
        credits, debits, _ = ledger_store.posted_sums(connection, wallet_id, until=start)
        opening = credits - debits
        found = ledger_store.posted_movements(
            connection, wallet_id, since=start, until=end, limit=STATEMENT_LINES_MAX + 1, leaving_out=CALLS
        )
        call_credits, call_debits, calls_count = ledger_store.posted_sums(
            connection, wallet_id, since=start, until=end, kinds=CALLS
        )
        credits, debits, _ = ledger_store.posted_sums(connection, wallet_id, since=start, until=end)
    movements = [_movement(t, wallet_id) for t in reversed(found[:STATEMENT_LINES_MAX])]
    return Statement(
        login=node.login,
        name=node.name,
        currency=node.currency,
        time_zone=node.time_zone,
        month=month.replace(day=1),
        period_start=start,
        period_end=end,
        opening_micros=opening,
        movements=movements,
        calls_count=calls_count,
        calls_micros=call_credits - call_debits,
        closing_micros=opening + credits - debits,
        complete=len(found) <= STATEMENT_LINES_MAX,
    )


PERIOD_DAYS_MAX = 400  # the longest period a margin is asked for at once


@dataclass(frozen=True, slots=True)
class CallMargin:
    login: str
    currency: str
    since: datetime
    until: datetime
    calls_sold: int  # calls of the level below that paid it in the period
    revenue_micros: int  # what they paid it, in its currency
    calls_bought: int  # calls it paid the level above for
    cost_micros: int  # what it paid, in its currency
    revenue_other_micros: dict[str, int]  # revenue in other currencies, by currency: not in the margin

    @property
    def margin_micros(self) -> int:
        return self.revenue_micros - self.cost_micros


def call_margin(
    database: Database, principal: Principal | None, *, login: str, since: datetime, until: datetime
) -> CallMargin:
    """A reseller's (or the provider's) revenue, cost and margin on calls posted within [since, until).

    Reading takes ``balance:read`` on the seller: the seller itself and its owners; its customers and
    other tenants are answered as if it did not exist.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise Refusal("time_zone_missing", "say the time zone of since and until (Z or +hh:mm)")
    if not since < until or until - since > timedelta(days=PERIOD_DAYS_MAX):
        raise Refusal("period_invalid", f"since comes before until, at most {PERIOD_DAYS_MAX} days before it")
    with database.reading() as connection:
        node, wallet_id = _wallet(connection, principal, login)
        if node.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
            raise Refusal("margin_for_sellers_only", "only resellers and the provider sell calls")
        revenue: dict[str, tuple[int, int]] = {}
        for currency, revenue_id in ledger_store.account_ids_by_currency(
            connection, node_id=node.id, purpose=AccountPurpose.REVENUE
        ).items():
            credits, debits, count = ledger_store.posted_sums(
                connection, revenue_id, since=since, until=until, kinds=CALLS
            )
            revenue[currency] = (credits - debits, count)
        credits, debits, bought = ledger_store.posted_sums(connection, wallet_id, since=since, until=until, kinds=CALLS)
    own, sold = revenue.pop(node.currency, (0, 0))
    return CallMargin(
        login=node.login,
        currency=node.currency,
        since=since,
        until=until,
        calls_sold=sold,
        revenue_micros=own,
        calls_bought=bought,
        cost_micros=debits - credits,
        revenue_other_micros={currency: amount for currency, (amount, _) in sorted(revenue.items()) if amount},
    )
