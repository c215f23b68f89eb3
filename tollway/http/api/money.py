"""Balances and money movements of a node: each write names its transfer id (idempotency key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from tollway.access.model import Role
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.balances import statements
from tollway.balances.service import Balance
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import (
    PAGE_SIZE_DEFAULT,
    AdjustmentIn,
    BalanceOut,
    CreditLimitIn,
    MarginOut,
    MoneyResult,
    PageSize,
    TopupIn,
    TransferOut,
    WalletTransferOut,
)
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.ledger.model import Applied, Transfer
from tollway.money import to_decimal, to_micros

router = APIRouter(prefix="/nodes/{login}", tags=["money"], responses=ERRORS)  # type: ignore[arg-type]


def balance_out(b: Balance) -> BalanceOut:
    return BalanceOut(
        login=b.login,
        currency=b.currency,
        balance=to_decimal(b.balance_micros),
        credit_limit=to_decimal(b.credit_limit_micros),
        reserved=to_decimal(b.pending_micros),
        available=None if b.unlimited else to_decimal(b.available_micros),
    )


def transfer_out(t: Transfer) -> TransferOut:
    return TransferOut(
        id=t.id,
        amount=to_decimal(t.amount_micros),
        currency=t.currency,
        kind=str(t.kind),
        phase=str(t.phase),
        reference=t.reference,
        created_at=t.created_at,
    )


def with_balance(applied: Applied, login: str, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    """The transfers of a movement, and the balance of ``login`` after it (as the caller may see it)."""
    return result(applied, balances.get_balance(database, login=login, principal=principal))


def result(applied: Applied, balance: Balance) -> MoneyResult:
    return MoneyResult(
        already_recorded=applied.already_existed,
        transfers=[transfer_out(t) for t in applied.transfers],
        balance=balance_out(balance),
    )


@router.get("/balance", summary="Balance, credit limit, reserved and available amounts")
def get_balance(login: str, database: DatabaseDep, principal: PrincipalDep) -> BalanceOut:
    return balance_out(balances.get_balance(database, login=login, principal=principal))


@router.post("/topups", summary="Top up a wallet below you (an agent: a deposit from its own wallet)")
def topup(login: str, body: TopupIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    if principal.role is Role.AGENT:
        deposited = agents.deposit(
            database, client_login=login, amount_micros=to_micros(body.amount), transfer_id=body.id, principal=principal
        )
        return with_balance(deposited, login, database, principal)
    applied = balances.topup(
        database,
        login=login,
        amount_micros=to_micros(body.amount),
        transfer_id=body.id,
        reference=body.reference,
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.post("/adjustments", summary="Correct a wallet below you by a signed amount, with a reason")
def adjust(login: str, body: AdjustmentIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    applied = balances.adjust(
        database,
        login=login,
        amount_micros=to_micros(body.amount),
        reason=body.reason,
        transfer_id=body.id,
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.put("/credit-limit", summary="Set the postpaid credit line of a node below you (0 = prepaid)")
def set_credit_limit(login: str, body: CreditLimitIn, database: DatabaseDep, principal: PrincipalDep) -> BalanceOut:
    return balance_out(
        balances.set_credit_limit(
            database, login=login, credit_limit_micros=to_micros(body.credit_limit), principal=principal
        )
    )


@router.get(
    "/transfers", summary="The wallet's transfers, newest first: a call's reservation shown released once it ends"
)
def list_transfers(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before: datetime | None = None,
) -> list[WalletTransferOut]:
    entries = balances.wallet_transfers(database, principal, login=login, limit=limit, before=before)
    return [
        WalletTransferOut(
            **transfer_out(entry.transfer).model_dump(), status=entry.status, effect=to_decimal(entry.effect_micros)
        )
        for entry in entries
    ]


@router.get("/margin", summary="A seller's revenue, cost and margin on calls for a period, in its currency")
def call_margin(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    since: Annotated[datetime, Query(description="from this instant, with its time zone")],
    until: Annotated[datetime, Query(description="to this instant (excluded), with its time zone")],
) -> MarginOut:
    found = statements.call_margin(database, principal, login=login, since=since, until=until)
    return MarginOut(
        login=found.login,
        currency=found.currency,
        since=found.since,
        until=found.until,
        calls_sold=found.calls_sold,
        revenue=to_decimal(found.revenue_micros),
        calls_bought=found.calls_bought,
        cost=to_decimal(found.cost_micros),
        margin=to_decimal(found.margin_micros),
        revenue_other_currencies={currency: to_decimal(m) for currency, m in found.revenue_other_micros.items()},
    )
