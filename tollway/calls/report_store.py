"""A seller's figures on its subtree's calls, grouped in SQL (``GROUP BY``), inside the caller's transaction.

Every query reads the ended calls of a subtree started in ``[since, until)``, each joined to two of its charge
lines: the one that paid the seller (its *revenue line*: the seller's direct customer's, whose revenue account
is the seller's) and the one the seller paid its owner (its *cost line*, absent for the provider). No other
line is read: a seller never sees what its owners pay. Figures come back as plain integers per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, Select, and_, case, func, literal, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from tollway.calls.model import NO_FIGURES, Figures
from tollway.store.schema import call_charges, calls, nodes
from tollway.store.types import UtcDateTime

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


def _calls_of(query: Select[Any], seller: Seller, since: datetime | None, until: datetime | None) -> Select[Any]:
    """The query over the seller's ended calls in the period, each with its revenue and cost lines (no period:
    the caller joins one)."""
    joined = calls.join(
        revenue_line,
        and_(revenue_line.c.call_id == calls.c.id, revenue_line.c.revenue_account_id.in_(seller.revenue_account_ids)),
    ).outerjoin(cost_line, and_(cost_line.c.call_id == calls.c.id, cost_line.c.node_id == seller.node_id))
    query = query.select_from(joined).where(
        calls.c.state == "ended", calls.c.path.startswith(seller.path, autoescape=True)
    )
    if since is not None and until is not None:
        query = query.where(calls.c.created_at >= since, calls.c.created_at < until)
    return query


def total(
    connection: Connection, seller: Seller, *, since: datetime, until: datetime
) -> tuple[Figures, dict[str, int]]:
    """The period's figures, and the revenue its customers paid in other currencies than its own, by currency
    (in no margin): one query, grouped by the currency its customers paid in."""
    amount = func.coalesce(func.sum(revenue_line.c.amount_micros), 0).label("amount")
    query = _calls_of(select(revenue_line.c.currency, amount, *_sums(seller)), seller, since, until)
    found = [
        (row.currency, int(row.amount), _of(row)) for row in connection.execute(query.group_by(revenue_line.c.currency))
    ]
    figures = Figures(*(sum(getattr(f, name) for _, _, f in found) for name in Figures.__dataclass_fields__))
    return figures, {
        currency: paid
        for currency, paid, _ in sorted(found, key=lambda row: row[0])
        if currency != seller.currency and paid
    }


def per_day(connection: Connection, seller: Seller, *, days: Sequence[tuple[datetime, datetime]]) -> list[Figures]:
    """Each day's sums, by the days' ``[since, until)`` bounds (consecutive, at most 500): a table of the days
    joined to the calls, so each day is an index range of its own, whatever its length in UTC."""
    if not days:
        return []
    bounds = union_all(
        *(
            select(
                literal(number, Integer).label("day"),
                literal(since, UtcDateTime()).label("since"),
                literal(until, UtcDateTime()).label("until"),
            )
            for number, (since, until) in enumerate(days)
        )
    ).cte("days")
    # Each day's own bounds only: with the period's as well, SQLite would range over the period once a day.
    query = _calls_of(select(bounds.c.day, *_sums(seller)), seller, None, None)
    query = query.join(bounds, and_(calls.c.created_at >= bounds.c.since, calls.c.created_at < bounds.c.until))
    found = {row.day: _of(row) for row in connection.execute(query.group_by(bounds.c.day))}
    return [found.get(number, NO_FIGURES) for number in range(len(days))]


@dataclass(frozen=True, slots=True)
class DestinationFigures:
    prefix: str
    description: str
    figures: Figures


def per_destination(
    connection: Connection, seller: Seller, *, since: datetime, until: datetime, limit: int
) -> list[DestinationFigures]:
    """The destinations as the seller rated them (its revenue line's prefix and description), most revenue
    first, at most ``limit``."""
    keys = (revenue_line.c.prefix, revenue_line.c.description)
    revenue = _sums(seller)[3]
    query = _calls_of(select(*keys, *_sums(seller)), seller, since, until).group_by(*keys)
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
    connection: Connection, seller: Seller, *, since: datetime, until: datetime, order: str, limit: int
) -> list[CustomerFigures]:
    """The seller's direct customers (the payers of its revenue lines, each with its subtree's calls), by
    ``order`` (one of ``CUSTOMER_ORDERS``), largest first, at most ``limit``."""
    sums = _sums(seller)
    margin = sums[3] - sums[4]
    key = {"revenue": sums[3], "margin": margin, "minutes": sums[2]}[order]
    grouped = (
        _calls_of(select(revenue_line.c.node_id.label("node_id"), *sums), seller, since, until)
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
