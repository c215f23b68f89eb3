"""Agents' money rules (pure): terms, commission, the transfers of a deposit, batch limits.

An agent sells its reseller's service: it tops up its own wallet (a payment its reseller records),
deposits from that wallet into the clients it manages, and pays its reseller a fee per deposit and per
new account. Every deposit into one of its clients (its own, and the client's own payments) earns it
a commission, paid by the reseller from its revenue into the agent's commission account, which the
agent may move to its wallet. Agents are never charged per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tollway.errors import Refusal
from tollway.ledger.model import TransferKind, TransferRequest
from tollway.money import AMOUNT_MICROS_MAX

PPM = 1_000_000  # parts per million: a commission of 10 % is 100,000 ppm
COMMISSION_DECIMALS_MAX = 4  # 12.3456 % is the finest commission
BATCH_ACCOUNTS_MAX = 10_000  # accounts created in one batch
AGENT_BATCH_MIN = 10  # an agent creates at least this many at a time (ITC's rule)
LOGIN_PREFIX_LENGTH_MAX = 40
LOGIN_RANDOM_DIGITS = 9  # the generated part of a batch login
PASSWORD_LENGTH = 16  # generated: ~95 bits from 62 symbols

FEE_SUFFIX = ":fee"
COMMISSION_SUFFIX = ":commission"


@dataclass(frozen=True, slots=True)
class AgentTerms:
    commission_ppm: int = 0
    topup_fee_micros: int = 0
    account_fee_micros: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.commission_ppm <= PPM:
            raise Refusal("commission_invalid", "a commission is from 0 to 100 %")
        for name, fee in (("topup_fee", self.topup_fee_micros), ("account_fee", self.account_fee_micros)):
            if not 0 <= fee <= AMOUNT_MICROS_MAX:
                raise Refusal(f"{name}_invalid", f"the {name.replace('_', ' ')} is zero or a positive amount")

    @property
    def commission_percent(self) -> Decimal:
        percent = (Decimal(self.commission_ppm).scaleb(-4)).normalize()
        return percent.quantize(Decimal(1)) if percent == percent.to_integral_value() else percent


NO_TERMS = AgentTerms()


def commission_ppm_of(percent: Decimal | str) -> int:
    """``"10"`` or ``Decimal("12.5")`` percent → parts per million, exactly, or a refusal."""
    try:
        value = Decimal(percent)
    except (InvalidOperation, ValueError):
        raise Refusal("commission_invalid", f"{percent!r} is not a percentage") from None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise Refusal("commission_invalid", "a commission is from 0 to 100 %")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > COMMISSION_DECIMALS_MAX:
        raise Refusal("commission_invalid", f"a commission has at most {COMMISSION_DECIMALS_MAX} decimals")
    return int(value * (PPM // 100))


def commission_micros(amount_micros: int, commission_ppm: int) -> int:
    """The commission on a deposit, rounded half up to the micro-unit."""
    if amount_micros < 0:
        raise ValueError("a deposit is never negative")
    return (amount_micros * commission_ppm + PPM // 2) // PPM


@dataclass(frozen=True, slots=True)
class AgentAccounts:
    """The ledger accounts an agent's money moves through: its own two, and its reseller's revenue."""

    wallet: int
    commission: int
    reseller_revenue: int


def deposit_requests(
    *,
    transfer_id: str,
    amount_micros: int,
    terms: AgentTerms,
    agent: AgentAccounts,
    client_wallet: int,
    reference: str | None,
) -> list[TransferRequest]:
    """An agent's deposit into a client: the money, the agent's fee and its commission, linked.

    The batch is linked: if the agent's wallet cannot pay the amount and the fee, nothing happens.
    """
    requests = [
        TransferRequest(
            id=transfer_id,
            amount_micros=amount_micros,
            debit_account_id=agent.wallet,
            credit_account_id=client_wallet,
            kind=TransferKind.TRANSFER,
            reference=reference,
        )
    ]
    if terms.topup_fee_micros:
        requests.append(
            TransferRequest(
                id=transfer_id + FEE_SUFFIX,
                amount_micros=terms.topup_fee_micros,
                debit_account_id=agent.wallet,
                credit_account_id=agent.reseller_revenue,
                kind=TransferKind.FEE,
                reference=transfer_id,
            )
        )
    return requests + commission_requests(deposit_id=transfer_id, amount_micros=amount_micros, terms=terms, agent=agent)


def commission_requests(
    *, deposit_id: str, amount_micros: int, terms: AgentTerms, agent: AgentAccounts
) -> list[TransferRequest]:
    """The commission a deposit earns, paid by the reseller; its reference is the deposit's id."""
    commission = commission_micros(amount_micros, terms.commission_ppm)
    if not commission:
        return []
    return [
        TransferRequest(
            id=deposit_id + COMMISSION_SUFFIX,
            amount_micros=commission,
            debit_account_id=agent.reseller_revenue,
            credit_account_id=agent.commission,
            kind=TransferKind.COMMISSION,
            reference=deposit_id,
        )
    ]


def account_fee_request(
    *, transfer_id: str, terms: AgentTerms, agent: AgentAccounts, login: str
) -> list[TransferRequest]:
    if not terms.account_fee_micros:
        return []
    return [
        TransferRequest(
            id=transfer_id,
            amount_micros=terms.account_fee_micros,
            debit_account_id=agent.wallet,
            credit_account_id=agent.reseller_revenue,
            kind=TransferKind.FEE,
            reference=f"new account {login}",
        )
    ]


def check_batch_size(count: int, *, by_agent: bool) -> int:
    low = AGENT_BATCH_MIN if by_agent else 1
    if not low <= count <= BATCH_ACCOUNTS_MAX:
        who = "an agent creates" if by_agent else "a batch has"
        raise Refusal("batch_size_invalid", f"{who} {low} to {BATCH_ACCOUNTS_MAX} accounts at a time")
    return count


def batch_cost_micros(count: int, initial_balance_micros: int, terms: AgentTerms) -> int:
    """What a batch costs the agent that makes it: each account's fee and, when it starts with a balance,
    that balance and the deposit's fee."""
    deposit = initial_balance_micros + terms.topup_fee_micros if initial_balance_micros else 0
    return count * (terms.account_fee_micros + deposit)


@dataclass(frozen=True, slots=True)
class CommissionLine:
    """One deposit's commission, for a statement."""

    deposit_id: str
    client: str
    deposit_micros: int
    commission_micros: int
    at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class CommissionStatement:
    agent: str
    currency: str
    period_from: str
    period_to: str
    lines: tuple[CommissionLine, ...]
    accrued_micros: int  # in the period
    withdrawn_micros: int  # moved to the wallet in the period
    balance_micros: int  # the commission account now

    @property
    def deposits_micros(self) -> int:
        return sum(line.deposit_micros for line in self.lines)


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """A template for new client accounts, owned by a reseller (or the provider)."""

    name: str
    client_type: str
    login_prefix: str
    tariff: str | None = None  # the owner's tariff the new accounts pay at
    language: str | None = None  # None: the owner's
    time_zone: str | None = None
    credit_limit_micros: int = 0
    concurrent_calls_limit: int | None = None
    max_call_seconds: int | None = None
