"""A seller's reports on its subtree's calls over a period of days, and the calls in progress below it.

Reports count the ended calls *started* within the period (days in the reader's time zone), as the call
records hold them: revenue (what the seller's direct customers paid it, in its currency), cost (what it paid
its owner for those calls; nothing for the provider), margin, ASR (answered calls per hundred tried) and ACD
(the answered calls' mean length): per day, per destination (the prefix and description the seller's own
rating gave the call) and per direct customer (its subtree's calls rolled up). Every figure is one
``GROUP BY`` in SQL (``tollway.calls.report_store``), never a loop over calls.

Reading takes ``balance:read`` and ``calls:read`` on the seller: the seller itself and its owners; anyone
else is answered as if it did not exist. A seller's figures read only the charge lines that paid it and the
ones it paid: never what its owners pay (``tollway.access.model.sees_charge``). Revenue in other currencies
is given apart, by currency, and left out of the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tollway.access.model import Action, Principal, authorize
from tollway.calls import report_store
from tollway.calls import service as calls
from tollway.calls.model import NO_FIGURES, Figures
from tollway.calls.report_store import CUSTOMER_ORDERS, CustomerFigures, DestinationFigures, Seller
from tollway.errors import Refusal
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.store.database import Database
from tollway.tree.model import NodeKind
from tollway.tree.service import require_node

REPORT_DAYS_MAX = 400  # the longest period reported at once (a day is one row of the days' table)
ROWS_MAX = 1_000  # destinations or customers in one report
LIVE_CALLS_MAX = 200  # calls in progress listed at once (the counts count them all)
YEARS = range(1970, 9000)


@dataclass(frozen=True, slots=True)
class Report:
    login: str
    name: str
    currency: str
    time_zone: str
    first_day: date
    last_day: date  # included
    total: Figures
    days: list[tuple[date, Figures]]
    destinations: list[DestinationFigures]  # most revenue first
    customers: list[CustomerFigures]  # by ``customers_by``, largest first
    customers_by: str  # revenue, margin or minutes
    revenue_other_micros: dict[str, int]  # revenue in other currencies, by currency: in no margin

    @property
    def since(self) -> datetime:
        return _midnight(self.first_day, self.time_zone)

    @property
    def until(self) -> datetime:
        return _midnight(self.last_day + timedelta(days=1), self.time_zone)


def _midnight(day: date, time_zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(time_zone))


def _check_period(first_day: date, last_day: date, time_zone: str) -> None:
    if first_day.year not in YEARS or last_day.year not in YEARS:
        raise Refusal("day_invalid", f"days from {YEARS.start} to {YEARS.stop - 1}")
    if last_day < first_day or (last_day - first_day).days + 1 > REPORT_DAYS_MAX:
        raise Refusal("period_invalid", f"the first day comes before the last, at most {REPORT_DAYS_MAX} days")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise Refusal("time_zone_invalid", f"{time_zone!r} is not a time zone") from error


def call_report(
    database: Database,
    principal: Principal | None,
    *,
    login: str,
    first_day: date,
    last_day: date,
    time_zone: str,
    customers_by: str = "revenue",
    rows_max: int = 20,
) -> Report:
    """The seller ``login``'s report on the calls started from ``first_day`` to ``last_day`` (both included,
    midnight to midnight in ``time_zone``): its total, each day's, its ``rows_max`` best destinations and
    direct customers (ranked by ``customers_by``)."""
    _check_period(first_day, last_day, time_zone)
    if customers_by not in CUSTOMER_ORDERS:
        raise Refusal("order_invalid", f"customers are ranked by one of {', '.join(CUSTOMER_ORDERS)}")
    if not 1 <= rows_max <= ROWS_MAX:
        raise Refusal("limit_invalid", f"a report lists 1 to {ROWS_MAX} destinations or customers")
    midnights = [_midnight(first_day + timedelta(days=n), time_zone) for n in range((last_day - first_day).days + 2)]
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, node)
        authorize(principal, Action.CALLS_READ, node)
        if node.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
            raise Refusal("margin_for_sellers_only", "only resellers and the provider sell calls")
        revenue_ids = ledger_store.account_ids_by_currency(connection, node_id=node.id, purpose=AccountPurpose.REVENUE)
        seller = Seller(node.id, node.path, tuple(revenue_ids.values()), node.currency)
        span = report_store.span_of(connection, since=midnights[0], until=midnights[-1])
        total, others, days = NO_FIGURES, dict[str, int](), [NO_FIGURES] * (len(midnights) - 1)
        destinations: list[DestinationFigures] = []
        customers: list[CustomerFigures] = []
        if span is not None:  # else no call at all started in the period
            days, others = report_store.per_day(connection, seller, span, midnights=midnights)
            total = report_store.added(days)
            destinations = report_store.per_destination(connection, seller, span, limit=rows_max)
            customers = report_store.per_customer(connection, seller, span, order=customers_by, limit=rows_max)
    return Report(
        login=node.login,
        name=node.name,
        currency=node.currency,
        time_zone=time_zone,
        first_day=first_day,
        last_day=last_day,
        total=total,
        days=[(first_day + timedelta(days=n), figures) for n, figures in enumerate(days)],
        destinations=destinations,
        customers=customers,
        customers_by=customers_by,
        revenue_other_micros=others,
    )


@dataclass(frozen=True, slots=True)
class LiveCalls:
    ringing: int  # authorized, not answered yet
    talking: int  # answered
    calls: list[dict[str, Any]]  # the oldest ``limit`` of them, as ``list_calls`` shows them to the reader

    @property
    def count(self) -> int:
        return self.ringing + self.talking


def live_calls(database: Database, principal: Principal | None, *, limit: int = LIVE_CALLS_MAX) -> LiveCalls:
    """The calls in progress the principal may read (its subtree's), with the charge lines it may see, and
    how many are ringing and talking."""
    if not 1 <= limit <= LIVE_CALLS_MAX:
        raise Refusal("limit_invalid", f"1 to {LIVE_CALLS_MAX} calls in progress at once")
    scope = calls.reader_scope(principal)
    found, _ = calls.list_calls(database, principal=principal, active=True, limit=limit)
    with database.reading() as connection:
        if scope.path_prefix is not None or scope.node_id is None:
            counts = report_store.active_by_state(connection, scope.path_prefix or "/")
        else:
            counts = {
                state: sum(1 for view in found if view["status"] == state) for state in ("authorized", "answered")
            }
    return LiveCalls(counts.get("authorized", 0), counts.get("answered", 0), found)
