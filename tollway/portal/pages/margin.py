"""A seller's margin on calls: what its customers paid it (revenue), what it paid the level above (cost) and
the difference, over a period of days the admin chooses, day by day when the period is a month or less, and
as CSV.

The numbers are the margin service's (``balances.statements.call_margin``, as ``GET
/api/v1/nodes/{login}/margin``): read with ``balance:read`` on the seller, so a reseller's admin sees its own
and those of the resellers below it, the provider's any seller's; anyone else gets 404. Revenue in other
currencies than the seller's is listed apart, never added to the margin.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from tollway.balances import statements
from tollway.balances.statements import CallMargin
from tollway.csvsafe import safe_row
from tollway.money import to_decimal
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.periods import DAYS_TYPED_MAX, Period, midnight, period_of, today
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, render

router = APIRouter()
NAVIGATION = (NavItem("/margin", N_("Margin"), ADMIN_ROLES, order=40),)
DAYS_LISTED_MAX = 31  # a longer period is shown as its total only
ONE_DAY = timedelta(days=1)
CSV_HEADERS = ("day", "login", "currency", "calls_sold", "revenue", "calls_bought", "cost", "margin")
Day = Annotated[str, Query(max_length=DAYS_TYPED_MAX)]
Login = Annotated[str, Query(max_length=63)]


def _period(visitor: Visitor, since: str, until: str) -> Period:
    last_default = today(visitor.time_zone)
    return period_of(
        since, until, time_zone=visitor.time_zone, first_default=last_default.replace(day=1), last_default=last_default
    )


def _margins(visitor: Visitor, login: str, period: Period) -> tuple[CallMargin, list[tuple[date, CallMargin]]]:
    """The period's total and, for a period of at most ``DAYS_LISTED_MAX`` days, each day's."""
    database, principal = visitor.database, visitor.principal
    total = statements.call_margin(database, principal, login=login, since=period.since, until=period.until)
    days = period.days() if period.day_count <= DAYS_LISTED_MAX else []
    zone = visitor.time_zone
    daily = [
        (
            day,
            statements.call_margin(
                database, principal, login=login, since=midnight(day, zone), until=midnight(day + ONE_DAY, zone)
            ),
        )
        for day in days
    ]
    return total, daily


@router.get("/margin")
def margin(visitor: AdminDep, since: Day = "", until: Day = "", account: Login = "") -> Response:
    period = _period(visitor, since, until)
    login = account.strip() or visitor.login
    total, daily = _margins(visitor, login, period)
    filters = {"since": period.first_day.isoformat(), "until": period.last_day.isoformat(), "account": account.strip()}
    return render(
        visitor,
        "margin.html",
        values={
            "total": total,
            "daily": daily,
            "first_day": period.since,
            "last_day": midnight(period.last_day, visitor.time_zone),
            "filters": filters,
            "csv_query": staff.query(**filters),
            "days_listed_max": DAYS_LISTED_MAX,
        },
    )


def _csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(safe_row(values))
    return buffer.getvalue()


def _csv_row(day: str, found: CallMargin) -> list[object]:
    return [
        day,
        found.login,
        found.currency,
        found.calls_sold,
        to_decimal(found.revenue_micros),
        found.calls_bought,
        to_decimal(found.cost_micros),
        to_decimal(found.margin_micros),
    ]


@router.get("/margin.csv")
def margin_export(visitor: AdminDep, since: Day = "", until: Day = "", account: Login = "") -> Response:
    """A line per day (for a period of a month or less), then the period's total ("total" as its day); amounts
    with all six decimals, in the seller's currency."""
    period = _period(visitor, since, until)
    total, daily = _margins(visitor, account.strip() or visitor.login, period)

    def lines() -> Iterator[str]:
        yield _csv_line(list(CSV_HEADERS))
        for day, found in daily:
            yield _csv_line(_csv_row(day.isoformat(), found))
        yield _csv_line(_csv_row("total", total))

    name = f"margin-{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"
    return Response(
        "".join(lines()),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
    )
