"""A seller's figures on its subtree's calls, grouped in SQL (``GROUP BY``), inside the caller's transaction.

Every query reads the ended calls of a subtree started in ``[since, until)``, each joined to two of its charge
lines: the one that paid the seller (its *revenue line*: the seller's direct customer's, whose revenue account
is the seller's) and the one the seller paid its owner (its *cost line*, absent for the provider). No other
line is read: a seller never sees what its owners pay. Figures come back as plain integers per group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, Select, and_, case, func, literal, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from tollway.calls.model import Figures
from tollway.store.schema import call_charges, calls, nodes
from tollway.store.types import UtcDateTime

DAYS_MAX = 1_000  # days in one query: the CASE tree is ten deep at most
revenue_line = aliased(call_charges, name="revenue_line")
cost_line = aliased(call_charges, name="cost_line")


@dataclass(frozen=True, slots=True)
class Seller:
    """Whose figures: its node, its subtree's path, its revenue accounts (any currency) and its currency."""

    node_id: int
    path: str
    revenue_account_ids: tuple[int, ...]
    currency: str


def _sums(seller: Seller) -> list[ColumnElement[Any]]:
    answered = calls.c.duration_seconds > 0
    return [
        func.count().label("calls_attempted"),
        func.coalesce(func.sum(case((answered, 1), else_=0)), 0).label("calls_answered"),
        func.coalesce(func.sum(case((answered, calls.c.duration_seconds), else_=0)), 0).label("duration_seconds"),
        func.coalesce(
            func.sum(case((revenue_line.c.currency == seller.currency, revenue_line.c.amount_micros), else_=0)), 0
        ).label("revenue_micros"),
        func.coalesce(func.sum(cost_line.c.amount_micros), 0).label("cost_micros"),
    ]


def _of(row: Any) -> Figures:
    return Figures(
        int(row.calls_attempted),
        int(row.calls_answered),
        int(row.duration_seconds),
        int(row.revenue_micros),
        int(row.cost_micros),
    )


@dataclass(frozen=True, slots=True)
class Span:
    """A period, and the ids of the first and last calls started within it (``span_of``)."""

    since: datetime
    until: datetime
    first_call_id: int
    last_call_id: int


def span_of(connection: Connection, *, since: datetime, until: datetime) -> Span | None:
    """The period with its calls' ids; None when no call started within it."""
    # "id + 0": read the period's range of the index on created_at, not the primary key from either end until
    # a call of the period comes up (PostgreSQL's way with min and max of an indexed column).
    query = select(func.min(calls.c.id + 0), func.max(calls.c.id + 0)).where(
        calls.c.created_at >= since, calls.c.created_at < until
    )
    first, last = connection.execute(query).one()
    return None if first is None else Span(since, until, int(first), int(last))


def _calls_of(query: Select[Any], seller: Seller, span: Span) -> Select[Any]:
    """The query over the seller's ended calls in the period, each with its revenue and cost lines.

    Both lines are also bounded by the period's call ids: PostgreSQL then reads the charge lines of the
    period's calls as one range of their primary key, where it would otherwise scan every line ever written
    to hash-join them (about a second per million calls)."""
    lines = (span.first_call_id, span.last_call_id)
    joined = calls.join(
        revenue_line,
        and_(
            revenue_line.c.call_id == calls.c.id,
            revenue_line.c.call_id.between(*lines),
            revenue_line.c.revenue_account_id.in_(seller.revenue_account_ids),
        ),
    ).outerjoin(
        cost_line,
        and_(
            cost_line.c.call_id == calls.c.id,
            cost_line.c.call_id.between(*lines),
            cost_line.c.node_id == seller.node_id,
        ),
    )
    return query.select_from(joined).where(
        calls.c.created_at >= span.since,
        calls.c.created_at < span.until,
        calls.c.id.between(*lines),
        calls.c.state == "ended",
        calls.c.path.startswith(seller.path, autoescape=True),
    )


def added(figures: Iterable[Figures]) -> Figures:
    """The figures of several sets of calls as one."""
    found = list(figures)
    return Figures(*(sum(getattr(f, name) for f in found) for name in Figures.__dataclass_fields__))


def _day_of(midnights: Sequence[datetime], first: int, last: int) -> ColumnElement[int]:
    """The number of the day a call started on, among the days ``first`` to ``last`` (day n runs from
    ``midnights[n]`` to ``midnights[n + 1]``): a binary tree of CASEs, so a row is placed with about
    log2(days) comparisons, in one pass over the period on either database."""
    if first == last:
        return literal(first, Integer)
    middle = (first + last + 1) // 2
    return case(
        (calls.c.created_at < literal(midnights[middle], UtcDateTime()), _day_of(midnights, first, middle - 1)),
        else_=_day_of(midnights, middle, last),
    )


def per_day(
    connection: Connection, seller: Seller, span: Span, *, midnights: Sequence[datetime]
) -> tuple[list[Figures], dict[str, int]]:
    """Each day's figures, the days running from one midnight to the next (``midnights``: the period's first
    midnight, then each day's end; at most ``DAYS_MAX`` days), whatever their length in UTC; and the revenue
    its customers paid in other currencies than its own, by currency (in no margin). One query, grouped by
    day and by the currency its customers paid in; the period's total is the days' sum."""
    if not 2 <= len(midnights) <= DAYS_MAX + 1:
        raise ValueError(f"1 to {DAYS_MAX} days, not {len(midnights) - 1}")
    day = _day_of(midnights, 0, len(midnights) - 2).label("day")
    amount = func.coalesce(func.sum(revenue_line.c.amount_micros), 0).label("amount")
    query = _calls_of(select(day, revenue_line.c.currency, amount, *_sums(seller)), seller, span)
    days: dict[int, list[Figures]] = {}
    others: dict[str, int] = {}
    for row in connection.execute(query.group_by(day, revenue_line.c.currency)):
        days.setdefault(row.day, []).append(_of(row))
        if row.currency != seller.currency and row.amount:
            others[row.currency] = others.get(row.currency, 0) + int(row.amount)
    return [added(days.get(number, ())) for number in range(len(midnights) - 1)], dict(sorted(others.items()))


@dataclass(frozen=True, slots=True)
class DestinationFigures:
    prefix: str
    description: str
    figures: Figures


def per_destination(connection: Connection, seller: Seller, span: Span, *, limit: int) -> list[DestinationFigures]:
    """The destinations as the seller rated them (its revenue line's prefix and description), most revenue
    first, at most ``limit``."""
    keys = (revenue_line.c.prefix, revenue_line.c.description)
    revenue = _sums(seller)[3]
    query = _calls_of(select(*keys, *_sums(seller)), seller, span).group_by(*keys)
    query = query.order_by(revenue.desc(), revenue_line.c.prefix, revenue_line.c.description).limit(limit)
    return [DestinationFigures(row.prefix, row.description, _of(row)) for row in connection.execute(query)]


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    login: str
    name: str
    kind: str
    figures: Figures


CUSTOMER_ORDERS = ("revenue", "margin", "minutes")


def per_customer(
    connection: Connection, seller: Seller, span: Span, *, order: str, limit: int
) -> list[CustomerFigures]:
    """The seller's direct customers (the payers of its revenue lines, each with its subtree's calls), by
    ``order`` (one of ``CUSTOMER_ORDERS``), largest first, at most ``limit``."""
    sums = _sums(seller)
    margin = sums[3] - sums[4]
    key = {"revenue": sums[3], "margin": margin, "minutes": sums[2]}[order]
    grouped = (
        _calls_of(select(revenue_line.c.node_id.label("node_id"), *sums), seller, span)
        .group_by(revenue_line.c.node_id)
        .order_by(key.desc(), revenue_line.c.node_id)
        .limit(limit)
        .subquery()
    )
    query = select(grouped, nodes.c.login, nodes.c.name, nodes.c.kind).join(nodes, nodes.c.id == grouped.c.node_id)
    found = [CustomerFigures(row.login, row.name, row.kind, _of(row)) for row in connection.execute(query)]
    return sorted(found, key=lambda found: (-_order_value(found.figures, order), found.login))  # the join's order


def _order_value(figures: Figures, order: str) -> int:
    if order == "margin":
        return figures.margin_micros
    if order == "minutes":
        return figures.duration_seconds
    return figures.revenue_micros


def active_by_state(connection: Connection, path: str) -> dict[str, int]:
    """Active calls of the subtree at ``path`` by state (authorized: ringing; answered: talking)."""
    query = (
        select(calls.c.state, func.count().label("calls"))
        .where(calls.c.path.startswith(path, autoescape=True), calls.c.state.in_(("authorized", "answered")))
        .group_by(calls.c.state)
    )
    return {row.state: int(row.calls) for row in connection.execute(query)}
