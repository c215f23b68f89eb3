"""A seller's reports on its subtree's calls (the provider's and resellers' admins): revenue, cost and margin
per day, ASR and ACD, per destination and per direct customer, over the days it chooses (default: this month
so far, in its time zone), each table with a chart and as CSV (all six decimals).

The figures are ``calls.reports.call_report``'s: one ``GROUP BY`` each, read with ``balance:read`` and
``calls:read`` on the seller, so a reseller's admin sees its own (and, with ``?account=``, a reseller's below
it), the provider's any seller's; anyone else gets 404. A period the service refuses (backwards, a day out of
range, more than 400 days) shows the form again with the reason. The Margin page lives on here: ``/margin``
leads to this page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse

from tollway.calls import reports
from tollway.calls.model import Figures
from tollway.calls.report_store import CUSTOMER_ORDERS
from tollway.calls.reports import Report
from tollway.csvsafe import safe_row
from tollway.errors import NotFound, Refusal
from tollway.money import to_decimal
from tollway.portal import charts, staff
from tollway.portal.charts import Group
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.periods import DAYS_TYPED_MAX, Period, midnight, period_of, today
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, render

router = APIRouter()
NAVIGATION = (NavItem("/reports", N_("Reports"), ADMIN_ROLES, order=40),)
ROWS_SHOWN = 20  # destinations and customers on the page
ROWS_CHARTED = 10
NO_VALUE = "\u2013"  # an en dash: no ASR or ACD without calls
LABEL_CHARACTERS_MAX = 22
ORDERS = {"revenue": N_("Revenue"), "margin": N_("Margin"), "minutes": N_("Minutes")}
CUSTOMER_CHARTS = {  # each ranking's chart: its title and its description
    "revenue": (N_("Top customers by revenue"), N_("Bars of the ten customers who brought the most revenue.")),
    "margin": (N_("Top customers by margin"), N_("Bars of the ten customers who left the largest margin.")),
    "minutes": (N_("Top customers by minutes"), N_("Bars of the ten customers who talked the longest.")),
}
Day = Annotated[str, Query(max_length=DAYS_TYPED_MAX)]
Login = Annotated[str, Query(max_length=63)]
Order = Annotated[str, Query(max_length=16)]


def _period(visitor: Visitor, since: str, until: str) -> Period:
    last_default = today(visitor.time_zone)
    return period_of(
        since, until, time_zone=visitor.time_zone, first_default=last_default.replace(day=1), last_default=last_default
    )


def _report(visitor: Visitor, since: str, until: str, account: str, by: str, rows_max: int) -> Report:
    period = _period(visitor, since, until)
    return reports.call_report(
        visitor.database,
        visitor.principal,
        login=account.strip() or visitor.login,
        first_day=period.first_day,
        last_day=period.last_day,
        time_zone=visitor.time_zone,
        customers_by=by or "revenue",
        rows_max=rows_max,
    )


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARACTERS_MAX else text[: LABEL_CHARACTERS_MAX - 1] + "…"


def _charts(visitor: Visitor, report: Report) -> dict[str, charts.Chart]:
    fmt, currency = visitor.formats, report.currency

    def money(micros: int) -> str:
        return fmt.money(micros, currency)

    days = [
        Group(
            fmt.day(midnight(day, report.time_zone)),
            (f.revenue_micros, f.cost_micros),
            (money(f.revenue_micros), money(f.cost_micros)),
        )
        for day, f in report.days
    ]
    quality = [
        Group(
            group.label,
            (int((f.answer_seizure_ratio or Decimal(0)) * 10),),
            (_percent(visitor, f.answer_seizure_ratio),),
        )
        for group, (_, f) in zip(days, report.days, strict=True)
    ]
    destinations = [
        Group(
            _short(f"{row.prefix} {row.description}"),
            (row.figures.revenue_micros,),
            (money(row.figures.revenue_micros),),
        )
        for row in report.destinations[:ROWS_CHARTED]
    ]
    customers = [
        Group(
            _short(row.login),
            (_ranked(row.figures, report.customers_by),),
            (_ranked_text(visitor, row.figures, report),),
        )
        for row in report.customers[:ROWS_CHARTED]
    ]
    return {
        "days": charts.columns(days, ("revenue", "cost")),
        "quality": charts.columns(quality, ("asr",)),
        "destinations": charts.rows(destinations, "revenue"),
        "customers": charts.rows(customers, report.customers_by),
    }


def _percent(visitor: Visitor, value: Decimal | None) -> str:
    return NO_VALUE if value is None else visitor.formats.number(value) + "\u00a0%"


def _acd(visitor: Visitor, value: Decimal | None) -> str:
    return NO_VALUE if value is None else visitor.formats.duration(int(value.quantize(Decimal(1), ROUND_HALF_UP)))


def _ranked(figures: Figures, by: str) -> int:
    if by == "margin":
        return figures.margin_micros
    if by == "minutes":
        return figures.duration_seconds
    return figures.revenue_micros


def _ranked_text(visitor: Visitor, figures: Figures, report: Report) -> str:
    if report.customers_by == "minutes":
        return visitor.formats.duration(figures.duration_seconds)
    return visitor.formats.money(_ranked(figures, report.customers_by), report.currency)


def _filters(since: str, until: str, account: str, by: str, period: Period | None) -> dict[str, str]:
    return {
        "since": period.first_day.isoformat() if period else since,
        "until": period.last_day.isoformat() if period else until,
        "account": account.strip(),
        "by": by if by in CUSTOMER_ORDERS else "revenue",
    }


@router.get("/reports")
def report_page(visitor: AdminDep, since: Day = "", until: Day = "", account: Login = "", by: Order = "") -> Response:
    try:
        report = _report(visitor, since, until, account, by, ROWS_SHOWN)
    except NotFound:
        raise
    except Refusal as refusal:
        return render(
            visitor,
            "reports.html",
            status_code=422,
            values={
                "error": refusal_text(visitor, refusal),
                "report": None,
                "filters": _filters(since, until, account, by, None),
            },
        )
    filters = _filters(since, until, account, report.customers_by, None) | {
        "since": report.first_day.isoformat(),
        "until": report.last_day.isoformat(),
    }
    return render(
        visitor,
        "reports.html",
        values={
            "error": None,
            "report": report,
            "filters": filters,
            "orders": ORDERS,
            "customer_chart": CUSTOMER_CHARTS[report.customers_by],
            "csv_query": staff.query(**filters),
            "charts": _charts(visitor, report),
            "first_day": midnight(report.first_day, report.time_zone),
            "last_day": midnight(report.last_day, report.time_zone),
            "order_queries": {key: staff.query(**(filters | {"by": key})) for key in ORDERS},
            "percent": lambda value: _percent(visitor, value),
            "acd": lambda value: _acd(visitor, value),
            "midnight": lambda day: midnight(day, report.time_zone),
        },
    )


# -- CSV: one file per table, amounts with all six decimals ------------------------------------------------


def _decimal(value: Decimal | None) -> Decimal | str:
    return "" if value is None else value


def _figures(figures: Figures) -> list[object]:
    return [
        figures.calls_attempted,
        figures.calls_answered,
        figures.duration_seconds,
        _decimal(figures.answer_seizure_ratio),
        _decimal(figures.average_call_duration_seconds),
        to_decimal(figures.revenue_micros),
        to_decimal(figures.cost_micros),
        to_decimal(figures.margin_micros),
    ]


FIGURES = (
    "calls_attempted",
    "calls_answered",
    "duration_seconds",
    "asr_percent",
    "acd_seconds",
    "revenue",
    "cost",
    "margin",
)


def _days_rows(report: Report) -> Iterable[list[object]]:
    yield ["day", "login", "currency", *FIGURES]
    for day, figures in report.days:
        yield [day.isoformat(), report.login, report.currency, *_figures(figures)]
    yield ["total", report.login, report.currency, *_figures(report.total)]


def _destination_rows(report: Report) -> Iterable[list[object]]:
    yield ["prefix", "description", "currency", *FIGURES]
    for row in report.destinations:
        yield [row.prefix, row.description, report.currency, *_figures(row.figures)]


def _customer_rows(report: Report) -> Iterable[list[object]]:
    yield ["login", "name", "currency", *FIGURES]
    for row in report.customers:
        yield [row.login, row.name, report.currency, *_figures(row.figures)]


WRITERS: dict[str, Callable[[Report], Iterable[list[object]]]] = {
    "days": _days_rows,
    "quality": _days_rows,  # the days' ASR and ACD are columns of the days' file
    "destinations": _destination_rows,
    "customers": _customer_rows,
}


def _csv(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(safe_row(list(row)))
    return buffer.getvalue()


@router.get("/reports/{table}.csv")
def report_export(
    visitor: AdminDep, table: str, since: Day = "", until: Day = "", account: Login = "", by: Order = ""
) -> Response:
    """A table of the report as CSV: the days (with a ``total`` line), the destinations or the customers
    (up to a thousand, in the page's order)."""
    writer = WRITERS.get(table)
    if writer is None:
        raise NotFound("report", table)
    report = _report(visitor, since, until, account, by, reports.ROWS_MAX)
    name = f"{table}-{report.first_day.isoformat()}-{report.last_day.isoformat()}.csv"
    return Response(
        _csv(writer(report)),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
    )


@router.get("/margin")
def margin(visitor: AdminDep, since: Day = "", until: Day = "", account: Login = "") -> Response:
    """The Margin page became the Reports page's first table (revenue, cost and margin per day)."""
    return RedirectResponse("/reports?" + staff.query(since=since, until=until, account=account), status_code=307)


@router.get("/margin.csv")
def margin_export(visitor: AdminDep, since: Day = "", until: Day = "", account: Login = "") -> Response:
    return RedirectResponse(
        "/reports/days.csv?" + staff.query(since=since, until=until, account=account), status_code=307
    )
