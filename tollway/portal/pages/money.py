"""A customer's money: its top-ups, payments and other movements, and its printable monthly statement."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response

from tollway.balances import statements
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.ledger.model import TransferKind
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.web import CUSTOMER_ROLES, CustomerDep, render

router = APIRouter()
NAVIGATION = (
    NavItem("/payments", N_("Payments"), CUSTOMER_ROLES, order=40),
    NavItem("/statement", N_("Statement"), CUSTOMER_ROLES, order=50),
)
PAGE_SIZE = 50
MONTHS_OFFERED = 12
KINDS = {
    TransferKind.TOPUP: N_("Top-up"),
    TransferKind.PAYMENT: N_("Payment"),
    TransferKind.CALL_CHARGE: N_("Calls"),
    TransferKind.FEE: N_("Fee"),
    TransferKind.COMMISSION: N_("Commission"),
    TransferKind.TRANSFER: N_("Transfer"),
    TransferKind.ADJUSTMENT: N_("Adjustment"),
    TransferKind.REFUND: N_("Refund"),
    TransferKind.SUBSCRIPTION: N_("Plan fee"),
    TransferKind.EXCHANGE: N_("Currency exchange"),
    TransferKind.CAP_RESET: N_("Spending cap reset"),
}


def _before(at: str, transfer_id: str) -> tuple[datetime, str] | None:
    if not at:
        return None
    try:
        instant = datetime.fromisoformat(at)
    except ValueError:
        raise Refusal("request_invalid", "before_at is not an instant") from None
    if instant.tzinfo is None:
        raise Refusal("request_invalid", "before_at needs its offset")
    return instant, transfer_id


@router.get("/payments")
def payments(
    visitor: CustomerDep,
    before_at: Annotated[str, Query(max_length=40)] = "",
    before_id: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    page = statements.money_movements(
        visitor.database,
        visitor.principal,
        login=visitor.login,
        limit=PAGE_SIZE,
        before=_before(before_at, before_id),
    )
    return render(visitor, "payments.html", values={"page": page, "kinds": KINDS, "first_page": not before_at})


def months_offered(today: date) -> list[date]:
    """This month and the ones before it, newest first."""
    found, year, month = [], today.year, today.month
    for _ in range(MONTHS_OFFERED):
        found.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found


def month_chosen(text: str, today: date) -> date:
    if not text:
        return today.replace(day=1)
    try:
        chosen = date.fromisoformat(f"{text}-01")
    except ValueError:
        raise Refusal("request_invalid", "month is YYYY-MM") from None
    if chosen > today or (today.year - chosen.year) * 12 + today.month - chosen.month > statements.MONTHS_BACK_MAX:
        raise Refusal("request_invalid", "no statement for that month")
    return chosen


@router.get("/statement")
def statement(visitor: CustomerDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    today = utc_now().astimezone(ZoneInfo(visitor.time_zone)).date()
    chosen = month_chosen(month, today)
    found = statements.monthly_statement(visitor.database, visitor.principal, login=visitor.login, month=chosen)
    return render(
        visitor,
        "statement.html",
        values={"statement": found, "kinds": KINDS, "months": months_offered(today), "chosen": chosen},
    )
