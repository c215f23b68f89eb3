"""Balances and money movements of a node: each write names its transfer id (idempotency key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from tollway.access.model import Role
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.balances.service import Balance
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import (
    PAGE_SIZE_DEFAULT,
    AdjustmentIn,
    BalanceOut,
    CreditLimitIn,
    MoneyResult,
    PageSize,
    TopupIn,
    TransferOut,
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


@router.get("/transfers", summary="The wallet's transfers, newest first")
def list_transfers(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before: datetime | None = None,
) -> list[TransferOut]:
    transfers = balances.wallet_transfers(database, principal, login=login, limit=limit, before=before)
    return [transfer_out(t) for t in transfers]
