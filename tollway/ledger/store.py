"""Ledger persistence: load and lock accounts, record transfers, all inside the caller's transaction.

Locking: every batch locks all the accounts it touches with ``SELECT ... FOR UPDATE`` in ascending
id order, so two batches that share accounts queue instead of deadlocking, and a floor is checked
against balances no one else can change until commit. On SQLite, ``BEGIN IMMEDIATE`` already
serializes writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, text, update

from tollway.display import Rounding, plain_amount
from tollway.errors import Refusal, require
from tollway.ledger.model import (
    Account,
    AccountPurpose,
    Applied,
    Failure,
    PendingState,
    PendingView,
    Phase,
    Shortfall,
    Transfer,
    TransferError,
    TransferKind,
    TransferRequest,
    apply_batch,
    shortfall_of,
)
from tollway.store.bulk import insert_rows
from tollway.store.schema import ledger_accounts, transfers

ACCOUNTS_UPDATED_ONE_BY_ONE_MAX = 16  # more in one batch: one set-based UPDATE on PostgreSQL


class TransferRefused(Refusal):
    def __init__(self, failure: Failure, request: TransferRequest) -> None:
        super().__init__(failure.reason, f"transfer {request.id} refused: {failure.reason.replace('_', ' ')}")
        self.failure = failure


class FundsShort(TransferRefused):
    """``insufficient_funds`` with the numbers a person needs; services name the payer (balances.paid_by)."""

    def __init__(self, failure: Failure, request: TransferRequest, shortfall: Shortfall) -> None:
        super().__init__(failure, request)
        self.shortfall = shortfall
        self.message = f"transfer {request.id} refused: needs {needs(shortfall)}"


def needs(shortfall: Shortfall, breakdown: str | None = None) -> str:
    """'24.60 USD (24.10 + fee 0.50), 24.50 USD available': what is needed rounded up at the currency's
    precision, what is available rounded down (never shown more than it is)."""
    needed = plain_amount(shortfall.needed_micros, shortfall.currency, Rounding.UP)
    available = plain_amount(shortfall.available_micros, shortfall.currency, Rounding.DOWN)
    return f"{needed}{f' ({breakdown})' if breakdown else ''}, {available} available"


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        currency=row.currency,
        debits_posted=row.debits_posted,
        credits_posted=row.credits_posted,
        debits_pending=row.debits_pending,
        credits_pending=row.credits_pending,
        credit_limit_micros=row.credit_limit_micros,
        floor=row.floor,
    )


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount_micros=row.amount_micros,
        currency=row.currency,
        kind=TransferKind(row.kind),
        reference=row.reference,
        phase=Phase(row.phase),
        pending_id=row.pending_id,
        expires_at=row.expires_at,
        overshoot_micros=row.overshoot_micros,
        exchange_rate=row.exchange_rate,
        created_at=row.created_at,
    )


def create_account(
    connection: Connection,
    *,
    node_id: int,
    purpose: AccountPurpose,
    currency: str,
    floor: bool,
    now: datetime,
    credit_limit_micros: int = 0,
) -> int:
    result = connection.execute(
        insert(ledger_accounts).values(
            node_id=node_id,
            purpose=str(purpose),
            currency=currency,
            debits_posted=0,
            credits_posted=0,
            debits_pending=0,
            credits_pending=0,
            credit_limit_micros=credit_limit_micros,
            floor=floor,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_account(connection: Connection, account_id: int, *, lock: bool = False) -> Account | None:
    query = select(ledger_accounts).where(ledger_accounts.c.id == account_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _account(row)


def find_account_id(connection: Connection, *, node_id: int, purpose: AccountPurpose, currency: str) -> int | None:
    return connection.execute(
        select(ledger_accounts.c.id).where(
            ledger_accounts.c.node_id == node_id,
            ledger_accounts.c.purpose == str(purpose),
            ledger_accounts.c.currency == currency,
        )
    ).scalar_one_or_none()


def account_ids_by_currency(connection: Connection, *, node_id: int, purpose: AccountPurpose) -> dict[str, int]:
    """A node's accounts for ``purpose``, by currency (revenue and issuance accounts open per currency)."""
    rows = connection.execute(
        select(ledger_accounts.c.currency, ledger_accounts.c.id).where(
            ledger_accounts.c.node_id == node_id, ledger_accounts.c.purpose == str(purpose)
        )
    )
    return {row.currency: row.id for row in rows}


def lock_accounts(connection: Connection, account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts in ascending id order (the one order every writer uses)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = connection.execute(
        select(ledger_accounts).where(ledger_accounts.c.id.in_(ids)).order_by(ledger_accounts.c.id).with_for_update()
    )
    return {row.id: _account(row) for row in rows}


def set_credit_limit(connection: Connection, account_id: int, credit_limit_micros: int) -> Account:
    account = get_account(connection, account_id, lock=True)
    if account is None:
        raise Refusal("account_not_found", f"ledger account {account_id} not found")
    used = account.debits_posted + account.debits_pending - account.credits_posted
    if account.floor and credit_limit_micros < used:
        raise Refusal("credit_limit_below_usage", "the new credit limit is below what the account already uses")
    connection.execute(
        update(ledger_accounts)
        .where(ledger_accounts.c.id == account_id)
        .values(credit_limit_micros=credit_limit_micros)
    )
    account.credit_limit_micros = credit_limit_micros
    return account


def get_transfers(connection: Connection, ids: Iterable[str]) -> dict[str, Transfer]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = connection.execute(select(transfers).where(transfers.c.id.in_(wanted)))
    return {row.id: _transfer(row) for row in rows}


def resolved_pending_ids(connection: Connection, pending_ids: Sequence[str]) -> set[str]:
    """Which of these pending transfers have been posted or voided."""
    if not pending_ids:
        return set()
    query = select(transfers.c.pending_id).where(transfers.c.pending_id.in_(list(pending_ids)))
    return {row.pending_id for row in connection.execute(query)}


def _pending_views(connection: Connection, pendings: dict[str, Transfer]) -> dict[str, PendingView]:
    if not pendings:
        return {}
    resolutions = connection.execute(
        select(transfers.c.pending_id, transfers.c.phase).where(transfers.c.pending_id.in_(list(pendings)))
    )
    states = {
        row.pending_id: PendingState.POSTED if row.phase == Phase.POST else PendingState.VOIDED for row in resolutions
    }
    return {pid: PendingView(transfer, states.get(pid, PendingState.OPEN)) for pid, transfer in pendings.items()}


def _pendings_and_resolutions(
    connection: Connection, pending_ids: set[str]
) -> tuple[dict[str, Transfer], dict[str, PendingView]]:
    """The pending transfers of ``pending_ids`` and whether each was posted or voided, in one statement."""
    if not pending_ids:
        return {}, {}
    resolution = transfers.alias("resolution")
    rows = connection.execute(
        select(transfers, resolution.c.phase.label("resolution_phase"))
        .outerjoin(resolution, resolution.c.pending_id == transfers.c.id)
        .where(transfers.c.id.in_(sorted(pending_ids)))
    )
    pendings: dict[str, Transfer] = {}
    views: dict[str, PendingView] = {}
    for row in rows:
        pending = _transfer(row)
        state = {None: PendingState.OPEN, str(Phase.POST): PendingState.POSTED}.get(
            row.resolution_phase, PendingState.VOIDED
        )
        pendings[pending.id] = pending
        views[pending.id] = PendingView(pending, state)
    return pendings, views


def execute(
    connection: Connection,
    requests: Sequence[TransferRequest],
    *,
    now: datetime,
    locked: dict[int, Account] | None = None,
) -> Applied:
    """Record a linked batch of transfers, all or none; raise ``TransferRefused`` on refusal.

    Round trips are what a hot account waits on, so the usual case takes few: lock, insert, update.
    ``locked``: accounts the caller already locked in this transaction, with nothing written to them
    since (saves a round trip on a hot account). Earlier attempts with the batch's ids are rare, so they
    are not looked up first: the insert skips
    taken ids (under the locks, like the lookup it replaces), and only then, or on a refusal, are they
    read and the batch decided again, where a repeat answers before any other check.
    """
    pending_ids = {r.pending_id for r in requests if r.pending_id is not None}
    # Pending transfers are immutable rows, safe to read before locking; their resolutions are current only
    # under the locks. With accounts locked already (``locked``), both come in one statement.
    pendings, views = _pendings_and_resolutions(connection, pending_ids) if locked is not None else ({}, None)
    if locked is None:
        pendings = get_transfers(connection, pending_ids)
    account_ids: set[int] = set()
    for request in requests:
        account_ids.update(i for i in (request.debit_account_id, request.credit_account_id) if i is not None)
    for pending in pendings.values():
        account_ids.update((pending.debit_account_id, pending.credit_account_id))
    if locked is not None and account_ids <= locked.keys():
        accounts = {i: locked[i] for i in account_ids}  # locked earlier in this transaction: still current
    else:
        accounts = lock_accounts(connection, account_ids)
        views = None  # read before these locks: read again
    # Only now, under the locks, are resolutions and earlier attempts with these ids current.
    if views is None:
        views = _pending_views(connection, pendings)
    outcome = apply_batch(requests, accounts=accounts, pendings=views, existing={}, now=now)
    inserted: set[str] = set()
    if isinstance(outcome, Applied):
        if _posted_at_once(connection, outcome):
            inserted = _insert_and_update(connection, outcome)
            if len(inserted) == len(outcome.transfers):
                return outcome
            _update_accounts(connection, accounts)  # an earlier attempt: the balances back as they were locked
        else:
            inserted = _insert_new(connection, outcome.transfers)
            if len(inserted) == len(outcome.transfers):
                _update_accounts(connection, outcome.accounts)
                return outcome
    # Our own rows are left out: an earlier attempt is one that was there before this insert.
    existing = get_transfers(connection, (r.id for r in requests if r.id not in inserted))
    outcome = apply_batch(requests, accounts=accounts, pendings=views, existing=existing, now=now)
    if isinstance(outcome, Failure):
        request = requests[min(outcome.index, len(requests) - 1)]
        shortfall = shortfall_of(requests, accounts, outcome)
        if shortfall is not None:
            raise FundsShort(outcome, request, shortfall)  # rolls back our rows
        raise TransferRefused(outcome, request)  # rolls back our rows
    require(outcome.already_existed and not inserted, "a batch with earlier ids was applied as new")
    return outcome


def _insert_new(connection: Connection, new: Sequence[Transfer]) -> set[str]:
    """Insert the transfers whose id is free and answer their ids; a taken id is skipped, not an error.

    Only the primary key may conflict quietly: a second resolution of a pending transfer still fails.
    """
    rows = [
        {
            "id": t.id,
            "debit_account_id": t.debit_account_id,
            "credit_account_id": t.credit_account_id,
            "amount_micros": t.amount_micros,
            "currency": t.currency,
            "kind": str(t.kind),
            "reference": t.reference,
            "phase": str(t.phase),
            "pending_id": t.pending_id,
            "expires_at": t.expires_at,
            "overshoot_micros": t.overshoot_micros,
            "exchange_rate": t.exchange_rate,
            "created_at": t.created_at,
        }
        for t in new
    ]
    inserted = insert_rows(connection, transfers, rows, returning=[transfers.c.id], skip_conflicts_on=transfers.c.id)
    return {transfer_id for (transfer_id,) in inserted}


def _posted_at_once(connection: Connection, outcome: Applied) -> bool:
    """Whether the batch goes as one statement: on PostgreSQL, for the batches of calls and top-ups."""
    return connection.dialect.name == "postgresql" and len(outcome.accounts) <= ACCOUNTS_UPDATED_ONE_BY_ONE_MAX


# One statement, written once: built per batch with SQLAlchemy's constructs it cost more CPU than the rest of
# a call's statements together (its columns, CTEs and cache key made anew each time).
_INSERT_AND_UPDATE = text(
    "WITH inserted AS ("
    " INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_micros, currency, kind, reference,"
    " phase, pending_id, expires_at, overshoot_micros, exchange_rate, created_at)"
    " SELECT * FROM unnest(CAST(:id AS VARCHAR[]), CAST(:debit AS BIGINT[]), CAST(:credit AS BIGINT[]),"
    " CAST(:amount AS BIGINT[]), CAST(:currency AS VARCHAR[]), CAST(:kind AS VARCHAR[]), CAST(:reference AS VARCHAR[]),"
    " CAST(:phase AS VARCHAR[]), CAST(:pending_id AS VARCHAR[]), CAST(:expires_at AS TIMESTAMPTZ[]),"
    " CAST(:overshoot AS BIGINT[]), CAST(:exchange_rate AS VARCHAR[]), CAST(:created_at AS TIMESTAMPTZ[]))"
    " ON CONFLICT (id) DO NOTHING RETURNING id),"
    " written AS ("
    " UPDATE ledger_accounts SET debits_posted = v.dp, credits_posted = v.cp, debits_pending = v.dq,"
    " credits_pending = v.cq"
    " FROM unnest(CAST(:account AS BIGINT[]), CAST(:dp AS BIGINT[]), CAST(:cp AS BIGINT[]), CAST(:dq AS BIGINT[]),"
    " CAST(:cq AS BIGINT[])) AS v(id, dp, cp, dq, cq)"
    " WHERE ledger_accounts.id = v.id RETURNING ledger_accounts.id)"
    " SELECT (SELECT array_agg(id) FROM inserted), (SELECT count(*) FROM written)"
)


def _insert_and_update(connection: Connection, outcome: Applied) -> set[str]:
    """Insert the transfers whose id is free and write every touched account, in one statement (PostgreSQL):
    one round trip where a hot account's lock is held, not two. Answers the ids inserted: if one was taken
    the accounts are written all the same, and the caller writes them back."""
    new, touched = outcome.transfers, list(outcome.accounts.values())
    for transfer in new:  # what UtcDateTime checks on the way in: aware datetimes only
        if transfer.created_at.tzinfo is None or (transfer.expires_at and transfer.expires_at.tzinfo is None):
            raise ValueError("naive datetime given to a UTC column")
    row = connection.execute(
        _INSERT_AND_UPDATE,
        {
            "id": [t.id for t in new],
            "debit": [t.debit_account_id for t in new],
            "credit": [t.credit_account_id for t in new],
            "amount": [t.amount_micros for t in new],
            "currency": [t.currency for t in new],
            "kind": [str(t.kind) for t in new],
            "reference": [t.reference for t in new],
            "phase": [str(t.phase) for t in new],
            "pending_id": [t.pending_id for t in new],
            "expires_at": [t.expires_at for t in new],
            "overshoot": [t.overshoot_micros for t in new],
            "exchange_rate": [None if t.exchange_rate is None else str(Decimal(t.exchange_rate)) for t in new],
            "created_at": [t.created_at for t in new],
            "account": [a.id for a in touched],
            "dp": [a.debits_posted for a in touched],
            "cp": [a.credits_posted for a in touched],
            "dq": [a.debits_pending for a in touched],
            "cq": [a.credits_pending for a in touched],
        },
    ).one()
    require(row[1] == len(touched), "a ledger account vanished while locked")
    return set(row[0] or ())


def _update_accounts(connection: Connection, accounts: dict[int, Account]) -> None:
    """Write every touched account in one statement (psycopg pipelines an executemany: one round trip).

    Many accounts (a batch of 1,000 card sales touches 1,001) on PostgreSQL: one ``UPDATE … FROM
    unnest(…)`` with an array per column, not one statement per account."""
    if connection.dialect.name == "postgresql" and len(accounts) > ACCOUNTS_UPDATED_ONE_BY_ONE_MAX:
        touched = list(accounts.values())
        result = connection.execute(
            text(
                "UPDATE ledger_accounts SET debits_posted = v.dp, credits_posted = v.cp,"
                " debits_pending = v.dq, credits_pending = v.cq"
                " FROM unnest(CAST(:id AS BIGINT[]), CAST(:dp AS BIGINT[]), CAST(:cp AS BIGINT[]),"
                " CAST(:dq AS BIGINT[]), CAST(:cq AS BIGINT[])) AS v(id, dp, cp, dq, cq)"
                " WHERE ledger_accounts.id = v.id"
            ),
            {
                "id": [a.id for a in touched],
                "dp": [a.debits_posted for a in touched],
                "cp": [a.credits_posted for a in touched],
                "dq": [a.debits_pending for a in touched],
                "cq": [a.credits_pending for a in touched],
            },
        )
        require(result.rowcount == len(accounts), "a ledger account vanished while locked")
        return
    result = connection.execute(
        update(ledger_accounts).where(ledger_accounts.c.id == bindparam("account_id")),
        [
            {
                "account_id": account.id,
                "debits_posted": account.debits_posted,
                "credits_posted": account.credits_posted,
                "debits_pending": account.debits_pending,
                "credits_pending": account.credits_pending,
            }
            for account in accounts.values()
        ],
    )
    require(result.rowcount == len(accounts), "a ledger account vanished while locked")


def expired_pending_ids(connection: Connection, *, now: datetime, limit: int) -> list[str]:
    """Open pending transfers whose timeout has passed, oldest first.

    ``NOT EXISTS``, not ``NOT IN``: once the resolved ids outgrow PostgreSQL's work_mem, ``NOT IN`` scans
    them again for every pending transfer (at a million transfers it did not finish in minutes; this
    takes 1.2 s at ten million, bench/partitions.py)."""
    resolution = transfers.alias("resolution")
    resolved = select(resolution.c.id).where(resolution.c.pending_id == transfers.c.id)
    rows = connection.execute(
        select(transfers.c.id)
        .where(
            transfers.c.phase == str(Phase.PENDING),
            transfers.c.expires_at.is_not(None),
            transfers.c.expires_at <= now,
            ~resolved.exists(),
        )
        .order_by(transfers.c.expires_at)
        .limit(limit)
    )
    return [row.id for row in rows]


def account_transfers(
    connection: Connection, account_id: int, *, limit: int, before: datetime | None = None
) -> list[Transfer]:
    query = select(transfers).where(
        (transfers.c.debit_account_id == account_id) | (transfers.c.credit_account_id == account_id)
    )
    if before is not None:
        query = query.where(transfers.c.created_at < before)
    rows = connection.execute(query.order_by(transfers.c.created_at.desc(), transfers.c.id.desc()).limit(limit))
    return [_transfer(row) for row in rows]


POSTED_PHASES = (str(Phase.SINGLE), str(Phase.POST))  # what moved a balance (a pending transfer only reserved)


def posted_movements(
    connection: Connection,
    account_id: int,
    *,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    kinds: Sequence[TransferKind] | None = None,
    leaving_out: Sequence[TransferKind] = (),
) -> list[Transfer]:
    """The posted transfers into or out of an account, newest first: within [since, until), before the
    (created_at, id) ``before`` (the next page), of ``kinds`` only, or all but ``leaving_out``."""
    query = select(transfers).where(
        (transfers.c.debit_account_id == account_id) | (transfers.c.credit_account_id == account_id),
        transfers.c.phase.in_(POSTED_PHASES),
    )
    if since is not None:
        query = query.where(transfers.c.created_at >= since)
    if until is not None:
        query = query.where(transfers.c.created_at < until)
    if before is not None:
        at, transfer_id = before
        query = query.where(
            (transfers.c.created_at < at) | ((transfers.c.created_at == at) & (transfers.c.id < transfer_id))
        )
    if kinds is not None:
        query = query.where(transfers.c.kind.in_([str(kind) for kind in kinds]))
    if leaving_out:
        query = query.where(transfers.c.kind.not_in([str(kind) for kind in leaving_out]))
    rows = connection.execute(query.order_by(transfers.c.created_at.desc(), transfers.c.id.desc()).limit(limit))
    return [_transfer(row) for row in rows]


def posted_sums(
    connection: Connection,
    account_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[TransferKind] | None = None,
) -> tuple[int, int, int]:
    """(credits, debits, how many movements) posted to an account within [since, until), of ``kinds`` if given.

    Transfers sharing a reference count as one movement: a call's postings (one per reservation it took)
    carry its reference, so the count is of calls."""
    credited = case((transfers.c.credit_account_id == account_id, transfers.c.amount_micros), else_=0)
    debited = case((transfers.c.debit_account_id == account_id, transfers.c.amount_micros), else_=0)
    query = select(
        func.coalesce(func.sum(credited), 0),
        func.coalesce(func.sum(debited), 0),
        func.count(func.distinct(func.coalesce(transfers.c.reference, transfers.c.id))),
    ).where(
        (transfers.c.debit_account_id == account_id) | (transfers.c.credit_account_id == account_id),
        transfers.c.phase.in_(POSTED_PHASES),
    )
    if since is not None:
        query = query.where(transfers.c.created_at >= since)
    if until is not None:
        query = query.where(transfers.c.created_at < until)
    if kinds is not None:
        query = query.where(transfers.c.kind.in_([str(kind) for kind in kinds]))
    credits, debits, count = connection.execute(query).one()
    return int(credits), int(debits), int(count)


__all__ = ["TransferError", "TransferRefused", "create_account", "execute", "lock_accounts"]
