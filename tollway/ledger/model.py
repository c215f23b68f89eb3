"""Pure ledger rules: accounts, transfers, two-phase transfers, floors, linked batches. No I/O.

``apply_batch`` takes the requested transfers and the current state of every account and pending
transfer they touch, and returns either every new transfer with the accounts' new state, or the
first failure: a batch is linked, it happens whole or not at all.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from tollway.errors import require
from tollway.money import AMOUNT_MICROS_MAX

TRANSFER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")
REFERENCE_LENGTH_MAX = 200
BATCH_TRANSFERS_MAX = 1_000
PENDING_TIMEOUT_SECONDS_MAX = 7 * 24 * 3600


class AccountPurpose(StrEnum):
    WALLET = "wallet"  # the node's balance towards its owner
    REVENUE = "revenue"  # what its children pay it
    ISSUANCE = "issuance"  # where credit it hands to its children comes from
    COMMISSION = "commission"  # an agent's accrued commission
    EXCHANGE = "exchange"  # the provider's position in one currency, for conversions
    CLEARING = "clearing"  # a payment gateway's money in transit
    CLEARING_STRIPE = "clearing_stripe"  # what customers paid a node through its Stripe account
    CLEARING_BANK = "clearing_bank"  # what customers paid a node by bank transfer
    SPENDING_DAY = "spending_day"  # an organization user's daily spending cap: what is left of it (its floor)
    SPENDING_MONTH = "spending_month"  # the same, per month
    SPENT = "spent"  # where an organization user's spending under its caps is counted


class TransferKind(StrEnum):
    TOPUP = "topup"
    PAYMENT = "payment"
    CALL_CHARGE = "call_charge"
    FEE = "fee"
    COMMISSION = "commission"
    TRANSFER = "transfer"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"
    SUBSCRIPTION = "subscription"
    EXCHANGE = "exchange"
    CAP_RESET = "cap_reset"  # a spending cap starts a new day or month


class Phase(StrEnum):
    SINGLE = "single"  # posted at once
    PENDING = "pending"  # reserves; later posted (all or part) or voided, exactly once
    POST = "post"
    VOID = "void"


class TransferError(StrEnum):
    """Why a transfer was refused; stable, machine-readable codes."""

    ID_INVALID = "id_invalid"
    ID_REPEATED_IN_BATCH = "id_repeated_in_batch"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    BATCH_PARTIALLY_EXISTS = "batch_partially_exists"
    BATCH_TOO_LARGE = "batch_too_large"
    BATCH_EMPTY = "batch_empty"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_TOO_LARGE = "amount_too_large"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    ACCOUNT_NOT_FOUND = "account_not_found"
    CURRENCY_MISMATCH = "currency_mismatch"
    REFERENCE_TOO_LONG = "reference_too_long"
    TIMEOUT_INVALID = "timeout_invalid"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_NOT_ALLOWED = "pending_id_not_allowed"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXCEEDS_PENDING_AMOUNT = "exceeds_pending_amount"
    ACCOUNTS_NOT_ALLOWED = "accounts_not_allowed"
    OVERSHOOT_NOT_ALLOWED = "overshoot_not_allowed"


@dataclass(slots=True)
class Account:
    id: int
    currency: str
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0
    credit_limit_micros: int = 0
    floor: bool = True  # debits (posted + pending) must not exceed credits posted + credit limit

    @property
    def balance_micros(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available_micros(self) -> int:
        return self.balance_micros + self.credit_limit_micros - self.debits_pending

    def copy(self) -> Account:
        return dataclasses.replace(self)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    id: str
    amount_micros: int | None  # None on post means "the whole pending amount"; ignored on void
    debit_account_id: int | None = None  # None on post/void: taken from the pending transfer
    credit_account_id: int | None = None
    kind: TransferKind = TransferKind.TRANSFER
    reference: str | None = None
    phase: Phase = Phase.SINGLE
    pending_id: str | None = None
    timeout_seconds: int = 0  # pending only; 0 = never expires by itself
    overshoot_allowed: bool = False  # single only: may take the debit account past its floor
    exchange_rate: Decimal | None = None  # recorded on each leg of a conversion


@dataclass(frozen=True, slots=True)
class Transfer:
    """An immutable, recorded transfer."""

    id: str
    debit_account_id: int
    credit_account_id: int
    amount_micros: int
    currency: str
    kind: TransferKind
    reference: str | None
    phase: Phase
    pending_id: str | None
    expires_at: datetime | None
    overshoot_micros: int
    exchange_rate: Decimal | None
    created_at: datetime


class PendingState(StrEnum):
    OPEN = "open"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class PendingView:
    transfer: Transfer
    state: PendingState


@dataclass(frozen=True, slots=True)
class Failure:
    index: int
    error: TransferError

    @property
    def reason(self) -> str:
        return str(self.error)


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why a batch was refused for funds: what it takes from one account, and what that account had."""

    account_id: int
    currency: str
    needed_micros: int  # the batch's debits from the account, less its credits to it
    available_micros: int  # before the batch: balance + credit limit - reserved


def shortfall_of(
    requests: Sequence[TransferRequest], accounts: Mapping[int, Account], failure: Failure
) -> Shortfall | None:
    """The shortfall behind an ``insufficient_funds`` failure, counted over the whole batch (a deposit
    refused at its amount still needs its fee too); None for any other failure."""
    if failure.error is not TransferError.INSUFFICIENT_FUNDS or failure.index >= len(requests):
        return None
    short = requests[failure.index].debit_account_id
    if short is None or short not in accounts:
        return None
    moving = [r for r in requests if r.phase in (Phase.SINGLE, Phase.PENDING)]
    needed = sum(r.amount_micros or 0 for r in moving if r.debit_account_id == short) - sum(
        r.amount_micros or 0 for r in moving if r.credit_account_id == short
    )
    account = accounts[short]
    return Shortfall(short, account.currency, needed, account.available_micros)


@dataclass(frozen=True, slots=True)
class Applied:
    transfers: tuple[Transfer, ...]
    accounts: dict[int, Account] = field(default_factory=dict)  # new state of every touched account
    already_existed: bool = False  # an idempotent repeat: nothing was changed


BatchOutcome = Applied | Failure


def matches(request: TransferRequest, recorded: Transfer) -> bool:
    """Whether a repeated request asks for exactly what was recorded under its id."""
    amount_matches = (
        request.phase is Phase.VOID
        or (request.amount_micros is None and request.phase is Phase.POST)
        or request.amount_micros == recorded.amount_micros
    )
    accounts_match = (request.phase in (Phase.POST, Phase.VOID) and request.debit_account_id is None) or (
        request.debit_account_id == recorded.debit_account_id
        and request.credit_account_id == recorded.credit_account_id
    )
    recorded_timeout = recorded.expires_at - recorded.created_at if recorded.expires_at is not None else timedelta(0)
    return (
        amount_matches
        and accounts_match
        and request.kind is recorded.kind
        and request.reference == recorded.reference
        and request.phase is recorded.phase
        and request.pending_id == recorded.pending_id
        and timedelta(seconds=request.timeout_seconds) == recorded_timeout
        and request.exchange_rate == recorded.exchange_rate
    )


def _check_shape(request: TransferRequest) -> TransferError | None:
    """Checks that need nothing but the request itself."""
    if not TRANSFER_ID_PATTERN.match(request.id):
        return TransferError.ID_INVALID
    if request.reference is not None and len(request.reference) > REFERENCE_LENGTH_MAX:
        return TransferError.REFERENCE_TOO_LONG
    resolves = request.phase in (Phase.POST, Phase.VOID)
    if resolves and request.pending_id is None:
        return TransferError.PENDING_ID_REQUIRED
    if not resolves and request.pending_id is not None:
        return TransferError.PENDING_ID_NOT_ALLOWED
    if resolves and (request.debit_account_id is not None or request.credit_account_id is not None):
        return TransferError.ACCOUNTS_NOT_ALLOWED
    if request.overshoot_allowed and request.phase is not Phase.SINGLE:
        return TransferError.OVERSHOOT_NOT_ALLOWED
    if request.phase is Phase.PENDING:
        if not 0 <= request.timeout_seconds <= PENDING_TIMEOUT_SECONDS_MAX:
            return TransferError.TIMEOUT_INVALID
    elif request.timeout_seconds:
        return TransferError.TIMEOUT_INVALID
    if request.phase is not Phase.VOID and request.amount_micros is not None:
        if request.amount_micros <= 0:
            return TransferError.AMOUNT_MUST_BE_POSITIVE
        if request.amount_micros > AMOUNT_MICROS_MAX:
            return TransferError.AMOUNT_TOO_LARGE
    if request.phase in (Phase.SINGLE, Phase.PENDING):
        if request.amount_micros is None:
            return TransferError.AMOUNT_MUST_BE_POSITIVE
        if request.debit_account_id is None or request.credit_account_id is None:
            return TransferError.ACCOUNT_NOT_FOUND
        if request.debit_account_id == request.credit_account_id:
            return TransferError.ACCOUNTS_MUST_BE_DIFFERENT
    return None


def _idempotent_outcome(requests: Sequence[TransferRequest], existing: Mapping[str, Transfer]) -> BatchOutcome | None:
    """A repeat of a recorded batch answers with what was recorded; a different repeat is an error."""
    if not existing:
        return None
    for index, request in enumerate(requests):
        recorded = existing.get(request.id)
        if recorded is None:
            return Failure(index, TransferError.BATCH_PARTIALLY_EXISTS)
        if not matches(request, recorded):
            return Failure(index, TransferError.EXISTS_WITH_DIFFERENT_FIELDS)
    return Applied(tuple(existing[request.id] for request in requests), already_existed=True)


def apply_batch(
    requests: Sequence[TransferRequest],
    *,
    accounts: Mapping[int, Account],
    pendings: Mapping[str, PendingView],
    existing: Mapping[str, Transfer],
    now: datetime,
) -> BatchOutcome:
    """Apply a linked batch to copies of ``accounts``; all of it or none of it."""
    if not requests:
        return Failure(0, TransferError.BATCH_EMPTY)
    if len(requests) > BATCH_TRANSFERS_MAX:
        return Failure(BATCH_TRANSFERS_MAX, TransferError.BATCH_TOO_LARGE)
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if request.id in seen:
            return Failure(index, TransferError.ID_REPEATED_IN_BATCH)
        seen.add(request.id)
        shape_error = _check_shape(request)
        if shape_error is not None:
            return Failure(index, shape_error)
    repeated = _idempotent_outcome(requests, existing)
    if repeated is not None:
        return repeated

    state = {account_id: account.copy() for account_id, account in accounts.items()}
    resolved_in_batch: dict[str, PendingState] = {}
    created_in_batch: dict[str, Transfer] = {}
    transfers: list[Transfer] = []
    for index, request in enumerate(requests):
        result = _apply_one(request, state, pendings, created_in_batch, resolved_in_batch, now)
        if isinstance(result, TransferError):
            return Failure(index, result)
        transfers.append(result)
        if result.phase is Phase.PENDING:
            created_in_batch[result.id] = result
    touched = {t.debit_account_id for t in transfers} | {t.credit_account_id for t in transfers}
    return Applied(tuple(transfers), {account_id: state[account_id] for account_id in touched})


def _apply_one(
    request: TransferRequest,
    state: dict[int, Account],
    pendings: Mapping[str, PendingView],
    created_in_batch: Mapping[str, Transfer],
    resolved_in_batch: dict[str, PendingState],
    now: datetime,
) -> Transfer | TransferError:
    if request.phase in (Phase.POST, Phase.VOID):
        return _resolve_pending(request, state, pendings, created_in_batch, resolved_in_batch, now)
    debit = state.get(request.debit_account_id or 0)
    credit = state.get(request.credit_account_id or 0)
    if debit is None or credit is None:
        return TransferError.ACCOUNT_NOT_FOUND
    if debit.currency != credit.currency:
        return TransferError.CURRENCY_MISMATCH
    amount = request.amount_micros or 0
    overshoot = 0
    if debit.floor and amount > debit.available_micros:
        if not request.overshoot_allowed:
            return TransferError.INSUFFICIENT_FUNDS
        overshoot = amount - max(0, debit.available_micros)
    if request.phase is Phase.PENDING:
        debit.debits_pending += amount
        credit.credits_pending += amount
    else:
        debit.debits_posted += amount
        credit.credits_posted += amount
    expires_at = now + timedelta(seconds=request.timeout_seconds) if request.timeout_seconds else None
    return _record(request, debit.id, credit.id, amount, debit.currency, expires_at, overshoot, now)


def _resolve_pending(
    request: TransferRequest,
    state: dict[int, Account],
    pendings: Mapping[str, PendingView],
    created_in_batch: Mapping[str, Transfer],
    resolved_in_batch: dict[str, PendingState],
    now: datetime,
) -> Transfer | TransferError:
    pending_id = request.pending_id or ""
    view = pendings.get(pending_id)
    if view is None and pending_id in created_in_batch:
        view = PendingView(created_in_batch[pending_id], PendingState.OPEN)
    if view is None:
        return TransferError.PENDING_TRANSFER_NOT_FOUND
    pending = view.transfer
    if pending.phase is not Phase.PENDING:
        return TransferError.PENDING_TRANSFER_NOT_PENDING
    current = resolved_in_batch.get(pending_id, view.state)
    if current is PendingState.POSTED:
        return TransferError.PENDING_TRANSFER_ALREADY_POSTED
    if current is PendingState.VOIDED:
        return TransferError.PENDING_TRANSFER_ALREADY_VOIDED
    expired = pending.expires_at is not None and pending.expires_at <= now
    if request.phase is Phase.POST and expired:
        return TransferError.PENDING_TRANSFER_EXPIRED
    amount = pending.amount_micros if request.amount_micros is None else request.amount_micros
    if request.phase is Phase.POST and amount > pending.amount_micros:
        return TransferError.EXCEEDS_PENDING_AMOUNT
    debit = state[pending.debit_account_id]
    credit = state[pending.credit_account_id]
    require(debit.debits_pending >= pending.amount_micros, f"account {debit.id} pending debits below a pending")
    require(credit.credits_pending >= pending.amount_micros, f"account {credit.id} pending credits below a pending")
    debit.debits_pending -= pending.amount_micros
    credit.credits_pending -= pending.amount_micros
    if request.phase is Phase.POST:
        debit.debits_posted += amount
        credit.credits_posted += amount
        resolved_in_batch[pending_id] = PendingState.POSTED
    else:
        amount = pending.amount_micros
        resolved_in_batch[pending_id] = PendingState.VOIDED
    return _record(request, debit.id, credit.id, amount, pending.currency, None, 0, now)


def _record(
    request: TransferRequest,
    debit_account_id: int,
    credit_account_id: int,
    amount_micros: int,
    currency: str,
    expires_at: datetime | None,
    overshoot_micros: int,
    now: datetime,
) -> Transfer:
    return Transfer(
        id=request.id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount_micros=amount_micros,
        currency=currency,
        kind=request.kind,
        reference=request.reference,
        phase=request.phase,
        pending_id=request.pending_id,
        expires_at=expires_at,
        overshoot_micros=overshoot_micros,
        exchange_rate=request.exchange_rate,
        created_at=now,
    )


def floor_broken_by(account: Account) -> int:
    """How far an account with a floor is below it (0 when it is not)."""
    if not account.floor:
        return 0
    return max(0, -account.available_micros)
