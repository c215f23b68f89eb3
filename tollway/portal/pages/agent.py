"""An agent's own money: its commission (what it earned, withdrawn to its wallet) and its monthly statement.

- **Commission** (``/commission``): the commission account's balance, what this month accrued and what was
  withdrawn, its terms; the withdrawal form (an amount and the form's idempotency key, as every money form)
  moves commission to its wallet through ``agents.withdraw_commission``; more than the balance is refused
  with the form shown again.
- **Statement** (``/agent-statement?month=2026-12``): its wallet's month (opening balance, payments, its
  deposits into its customers, its fees, the commission withdrawn into it, closing balance) and its
  commission account's month (each deposit's commission, the accrued and withdrawn totals); printable as a
  customer's statement, and as CSV (``/agent-statement.csv``, all six decimals).

Agents only: for anyone else these pages do not exist (404).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Response

from tollway.agents import service as agents
from tollway.agents.model import CommissionStatement
from tollway.balances import statements
from tollway.balances.statements import Statement
from tollway.clock import utc_now
from tollway.csvsafe import safe_row
from tollway.errors import Refusal
from tollway.http.errors import status_for
from tollway.ledger.model import TransferKind
from tollway.money import to_decimal
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.money import KINDS, month_chosen, months_offered
from tollway.portal.pages.settings import parse_amount
from tollway.portal.web import AGENT_ROLES, AgentDep, Visitor, redirect, render

router = APIRouter()
NAVIGATION = (
    NavItem("/commission", N_("Commission"), AGENT_ROLES, order=30),
    NavItem("/agent-statement", N_("Statement"), AGENT_ROLES, order=50),
)
# An agent's wallet in its own words: a transfer out is a deposit into a customer, a commission in is a withdrawal.
AGENT_KINDS = KINDS | {
    TransferKind.TRANSFER: N_("Deposit"),
    TransferKind.COMMISSION: N_("Commission withdrawn"),
}
SAVED = {"withdrawn": N_("The commission is moved to your wallet.")}
OVER_BALANCE = N_("This is more than your commission balance.")
CSV_HEADERS = ("at", "account", "what", "reference", "client", "deposit", "amount", "currency")


def _month(visitor: Visitor, text: str) -> tuple[date, date]:
    """The month asked for (this one by default) and today, in the agent's time zone."""
    today = utc_now().astimezone(ZoneInfo(visitor.time_zone)).date()
    return month_chosen(text, today), today


def _commission(visitor: Visitor, month: date) -> CommissionStatement:
    since, until = statements.month_bounds(month, visitor.time_zone)
    return agents.commission_statement(
        visitor.database, agent_login=visitor.login, since=since, until=until, principal=visitor.principal
    )


def commission_page(
    visitor: Visitor, *, error: str | None = None, status_code: int = 200, amount: str = ""
) -> Response:
    month, _ = _month(visitor, "")
    terms, _ = agents.get_terms(visitor.database, agent_login=visitor.login, principal=visitor.principal)
    values: dict[str, Any] = {
        "commission": _commission(visitor, month),
        "month": month,
        "terms": terms,
        "key": staff.idempotency_key(),
        "error": error,
        "amount": amount,
        "saved": SAVED.get(visitor.request.query_params.get("saved", "")),
    }
    return render(visitor, "commission.html", status_code=status_code, values=values)


@router.get("/commission")
def commission(visitor: AgentDep) -> Response:
    return commission_page(visitor)


@router.post("/commission/withdraw")
def withdraw(
    visitor: AgentDep,
    amount: Annotated[str, Form(max_length=40)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Move an amount of commission to the wallet, once per form; more than the balance is refused."""
    try:
        amount_micros = parse_amount(amount.strip(), visitor.language)
        if amount_micros <= 0:
            raise Refusal("amount_invalid", "a withdrawal is a positive amount")
        agents.withdraw_commission(
            visitor.database,
            agent_login=visitor.login,
            transfer_id=key,
            amount_micros=amount_micros,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        text = visitor.gettext(OVER_BALANCE) if refusal.reason == "insufficient_funds" else None
        return commission_page(
            visitor, error=text or refusal_text(visitor, refusal), status_code=status_for(refusal), amount=amount
        )
    return redirect("/commission?saved=withdrawn")


def _statements(visitor: Visitor, month: date) -> tuple[Statement, CommissionStatement]:
    wallet = statements.monthly_statement(visitor.database, visitor.principal, login=visitor.login, month=month)
    return wallet, _commission(visitor, month)


@router.get("/agent-statement")
def statement(visitor: AgentDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    chosen, today = _month(visitor, month)
    wallet, commission_month = _statements(visitor, chosen)
    return render(
        visitor,
        "agent_statement.html",
        values={
            "statement": wallet,
            "commission": commission_month,
            "kinds": AGENT_KINDS,
            "months": months_offered(today),
            "chosen": chosen,
            "instant": datetime.fromisoformat,
        },
    )


def _csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(safe_row(values))
    return buffer.getvalue()


def statement_lines(wallet: Statement, commission_month: CommissionStatement) -> list[list[object]]:
    """The statement's lines for CSV: the wallet's opening, movements and closing, then each commission and
    the commission withdrawn; amounts signed from each account's side, with all six decimals."""
    currency, opening, closing = wallet.currency, wallet.period_start.isoformat(), wallet.period_end.isoformat()
    lines: list[list[object]] = [[opening, "wallet", "opening_balance", "", "", "", to_decimal(wallet.opening_micros)]]
    for movement in wallet.movements:
        amount = to_decimal(movement.amount_micros)
        lines.append([movement.at.isoformat(), "wallet", str(movement.kind), movement.reference or "", "", "", amount])
    lines.append([closing, "wallet", "closing_balance", "", "", "", to_decimal(wallet.closing_micros)])
    for line in commission_month.lines:
        deposit, earned = to_decimal(line.deposit_micros), to_decimal(line.commission_micros)
        lines.append([line.at, "commission", "commission", line.deposit_id, line.client, deposit, earned])
    withdrawn = to_decimal(-commission_month.withdrawn_micros)
    lines.append([closing, "commission", "withdrawn", "", "", "", withdrawn])
    return [[*line, currency] for line in lines]


@router.get("/agent-statement.csv")
def statement_export(visitor: AgentDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    chosen, _ = _month(visitor, month)
    wallet, commission_month = _statements(visitor, chosen)
    body = _csv_line(list(CSV_HEADERS)) + "".join(_csv_line(line) for line in statement_lines(wallet, commission_month))
    name = f"statement-{visitor.login}-{chosen.strftime('%Y-%m')}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
    )
