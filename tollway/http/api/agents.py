"""Agents and money around them: terms, deposits, commission, customer profiles, batches, payments,
refunds and reversals. Every write that moves money names its transfer id (idempotency key)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tollway.agents import batch as batches
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CommissionStatement, CustomerProfile, commission_ppm_of
from tollway.balances import service as balances
from tollway.http.api.money import with_balance
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import Login, MoneyResult, PositiveAmount, Strict, TopupIn, TransferId
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_decimal, to_micros
from tollway.tree.model import ClientType

router = APIRouter(tags=["agents"], responses=ERRORS)  # type: ignore[arg-type]
Percent = Annotated[str, Field(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$", examples=["10", "12.5"])]
Reason = Annotated[str, Field(min_length=1, max_length=200)]


class TermsIn(Strict):
    commission_percent: Percent = "0"
    topup_fee: PositiveAmount = "0"
    account_fee: PositiveAmount = "0"
    profiles: list[Login] | None = Field(default=None, max_length=100, description="null: leave them as they are")


class TermsOut(BaseModel):
    agent: str
    commission_percent: Decimal
    topup_fee: Decimal
    account_fee: Decimal
    profiles: list[str]


class DepositIn(Strict):
    id: TransferId
    client: Login
    amount: PositiveAmount


class WithdrawalIn(Strict):
    id: TransferId
    amount: PositiveAmount | None = Field(default=None, description="null: all the accrued commission")


class CommissionLineOut(BaseModel):
    deposit_id: str
    client: str
    deposit: Decimal
    commission: Decimal
    at: str


class StatementOut(BaseModel):
    agent: str
    currency: str
    since: str
    until: str
    deposits: Decimal
    accrued: Decimal
    withdrawn: Decimal
    balance: Decimal
    lines: list[CommissionLineOut]


class ProfileIn(Strict):
    client_type: ClientType = ClientType.RETAIL
    login_prefix: Annotated[str, Field(max_length=40, pattern=r"^[a-z0-9._@-]*$")] = ""
    tariff: Annotated[str | None, Field(max_length=128)] = None
    language: Annotated[str | None, Field(max_length=8)] = None
    time_zone: Annotated[str | None, Field(max_length=64)] = None
    credit_limit: PositiveAmount = "0"
    concurrent_calls_limit: Annotated[int | None, Field(ge=0, le=1_000_000)] = None
    max_call_seconds: Annotated[int | None, Field(ge=1, le=14_400)] = None


class ProfileOut(ProfileIn):
    name: str
    credit_limit: Decimal  # type: ignore[assignment]


class BatchIn(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,40}$", description="idempotency key of the batch")]
    profile: Login
    count: Annotated[int, Field(ge=1, le=10_000)]
    initial_balance: PositiveAmount = "0"
    agent: Login | None = Field(default=None, description="the agent whose clients they are (and who pays)")


class PaymentIn(TopupIn):
    pass


class RefundIn(Strict):
    id: TransferId
    amount: PositiveAmount
    reason: Reason


class ReversalIn(Strict):
    reason: Reason


def terms_out(agent: str, terms: AgentTerms, profiles: list[str]) -> TermsOut:
    return TermsOut(
        agent=agent,
        commission_percent=terms.commission_percent,
        topup_fee=to_decimal(terms.topup_fee_micros),
        account_fee=to_decimal(terms.account_fee_micros),
        profiles=profiles,
    )


def profile_out(profile: CustomerProfile) -> ProfileOut:
    return ProfileOut(
        name=profile.name,
        client_type=ClientType(profile.client_type),
        login_prefix=profile.login_prefix,
        tariff=profile.tariff,
        language=profile.language,
        time_zone=profile.time_zone,
        credit_limit=to_decimal(profile.credit_limit_micros),
        concurrent_calls_limit=profile.concurrent_calls_limit,
        max_call_seconds=profile.max_call_seconds,
    )


def statement_out(statement: CommissionStatement) -> StatementOut:
    return StatementOut(
        agent=statement.agent,
        currency=statement.currency,
        since=statement.period_from,
        until=statement.period_to,
        deposits=to_decimal(statement.deposits_micros),
        accrued=to_decimal(statement.accrued_micros),
        withdrawn=to_decimal(statement.withdrawn_micros),
        balance=to_decimal(statement.balance_micros),
        lines=[
            CommissionLineOut(
                deposit_id=line.deposit_id,
                client=line.client,
                deposit=to_decimal(line.deposit_micros),
                commission=to_decimal(line.commission_micros),
                at=line.at,
            )
            for line in statement.lines
        ],
    )


@router.put("/agents/{login}/terms", summary="Set an agent's commission, fees and the profiles it may use")
def put_terms(login: str, body: TermsIn, database: DatabaseDep, principal: PrincipalDep) -> TermsOut:
    terms = AgentTerms(
        commission_ppm_of(body.commission_percent), to_micros(body.topup_fee), to_micros(body.account_fee)
    )
    saved, profiles = agents.set_terms(
        database, agent_login=login, terms=terms, profiles=body.profiles, principal=principal
    )
    return terms_out(login, saved, profiles)


@router.get("/agents/{login}/terms", summary="An agent's commission, fees and profiles")
def get_terms(login: str, database: DatabaseDep, principal: PrincipalDep) -> TermsOut:
    terms, profiles = agents.get_terms(database, agent_login=login, principal=principal)
    return terms_out(login, terms, profiles)


@router.post("/agents/{login}/deposits", summary="Move money from an agent's wallet to one of its clients")
def deposit(login: str, body: DepositIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    applied = agents.deposit(
        database,
        client_login=body.client,
        amount_micros=to_micros(body.amount),
        transfer_id=body.id,
        agent_login=login,
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.post("/agents/{login}/commission/withdrawals", summary="Move accrued commission to the agent's wallet")
def withdraw(login: str, body: WithdrawalIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    applied = agents.withdraw_commission(
        database,
        agent_login=login,
        transfer_id=body.id,
        amount_micros=None if body.amount is None else to_micros(body.amount),
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.get("/agents/{login}/commissions", summary="Commission statement for a period: deposit by deposit")
def statement(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    since: Annotated[datetime, Query()],
    until: Annotated[datetime, Query()],
) -> StatementOut:
    return statement_out(
        agents.commission_statement(database, agent_login=login, since=since, until=until, principal=principal)
    )


@router.put("/nodes/{login}/profiles/{name}", summary="Define a customer profile (a template for new clients)")
def put_profile(login: str, name: str, body: ProfileIn, database: DatabaseDep, principal: PrincipalDep) -> ProfileOut:
    profile = CustomerProfile(
        name=name,
        client_type=str(body.client_type),
        login_prefix=body.login_prefix,
        tariff=body.tariff,
        language=body.language,
        time_zone=body.time_zone,
        credit_limit_micros=to_micros(body.credit_limit),
        concurrent_calls_limit=body.concurrent_calls_limit,
        max_call_seconds=body.max_call_seconds,
    )
    return profile_out(agents.put_profile(database, owner_login=login, profile=profile, principal=principal))


@router.get("/nodes/{login}/profiles", summary="A node's customer profiles")
def list_profiles(login: str, database: DatabaseDep, principal: PrincipalDep) -> list[ProfileOut]:
    return [profile_out(p) for p in agents.list_profiles(database, owner_login=login, principal=principal)]


@router.post(
    "/nodes/{login}/batches",
    status_code=201,
    summary="Create client accounts from a profile; their logins and passwords come back once, as CSV",
    response_class=Response,
    responses={201: {"content": {"text/csv": {}}}},
)
def create_batch(login: str, body: BatchIn, database: DatabaseDep, principal: PrincipalDep) -> Response:
    made = batches.create_batch(
        database,
        owner_login=login,
        profile_name=body.profile,
        count=body.count,
        batch_id=body.id,
        initial_balance_micros=to_micros(body.initial_balance),
        agent_login=body.agent,
        principal=principal,
    )
    return Response(
        batches.to_csv(made),
        status_code=201,
        media_type="text/csv",
        headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{made.batch_id}.csv"'},
    )


@router.post("/nodes/{login}/payments", summary="Record a payment the node made (its agent earns commission)")
def payment(login: str, body: PaymentIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    applied = agents.record_payment(
        database,
        login=login,
        amount_micros=to_micros(body.amount),
        transfer_id=body.id,
        reference=body.reference,
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.post("/nodes/{login}/refunds", summary="Give money back to a node outside Tollway (its wallet is debited)")
def refund(login: str, body: RefundIn, database: DatabaseDep, principal: PrincipalDep) -> MoneyResult:
    applied = balances.refund(
        database,
        login=login,
        amount_micros=to_micros(body.amount),
        reason=body.reason,
        transfer_id=body.id,
        principal=principal,
    )
    return with_balance(applied, login, database, principal)


@router.post(
    "/nodes/{login}/transfers/{transfer_id}/reversal",
    summary="Reverse a movement of the node's wallet with new transfers (its fee and commission too)",
)
def reverse(
    login: str, transfer_id: str, body: ReversalIn, database: DatabaseDep, principal: PrincipalDep
) -> MoneyResult:
    applied = balances.reverse(database, login=login, transfer_id=transfer_id, reason=body.reason, principal=principal)
    return with_balance(applied, login, database, principal)
