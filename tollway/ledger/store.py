"""Ledger persistence: load and lock accounts, record transfers, all inside the caller's transaction.

Locking: every batch locks the accounts with a floor it touches with ``SELECT ... FOR UPDATE`` in
ascending id order, so two batches that share accounts queue instead of deadlocking, and a floor is
checked against balances no one else can change until commit. On SQLite, ``BEGIN IMMEDIATE`` already
serializes writers.

Accounts without a floor (revenue, issuance, exchange, clearing, spent, the provider's wallet) can never
refuse a transfer, so nothing waits on them: a batch neither locks nor writes their row, it appends what
it changed in each of them to ``account_postings``, and ``fold_postings`` adds postings to rows later in
batches. Such an account's totals are its row plus its unfolded postings, read in one statement (one
snapshot) wherever they are read. Accounts with a floor never have postings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, Row, Select, bindparam, case, cast, func, insert, select, text, update

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
from tollway.store.schema import account_postings, ledger_accounts, transfers

ACCOUNTS_UPDATED_ONE_BY_ONE_MAX = 16  # more in one batch: one set-based UPDATE on PostgreSQL
FOLD_POSTINGS_MAX = 1_000  # postings one fold takes, in one transaction
TOTALS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")


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


def current_accounts(account_ids: Sequence[int] | None = None) -> Select[Any]:
    """Accounts as they stand: each row's totals plus its unfolded postings (only accounts without a floor
    have any), with every column of ``ledger_accounts``; of ``account_ids`` only, if given.

    One statement reads a row and its postings in one snapshot, so a fold committed meanwhile (which
    deletes postings and adds them to the row at once) is seen whole or not at all."""
    p = account_postings.c
    unfolded = select(p.account_id, *(cast(func.sum(p[name]), BigInteger).label(name) for name in TOTALS))
    if account_ids is not None:
        unfolded = unfolded.where(p.account_id.in_(account_ids))
    sums = unfolded.group_by(p.account_id).subquery("unfolded")
    a = ledger_accounts.c
    columns = [
        (a[c.name] + func.coalesce(sums.c[c.name], 0)).label(c.name) if c.name in TOTALS else a[c.name]
        for c in ledger_accounts.columns
    ]
    query = select(*columns).select_from(ledger_accounts.outerjoin(sums, sums.c.account_id == a.id))
    return query if account_ids is None else query.where(a.id.in_(account_ids))


def get_account(connection: Connection, account_id: int, *, lock: bool = False) -> Account | None:
    """The account as it stands; with ``lock``, locked if it has a floor (as ``lock_accounts``)."""
    if lock:
        return lock_accounts(connection, [account_id]).get(account_id)
    row = connection.execute(current_accounts([account_id])).first()
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


# The accounts with a floor locked in ascending id order (the one order every writer uses); those without one
# read unlocked, row plus unfolded postings, in the same statement. The trap this shape avoids: a ``FOR UPDATE``
# that waited for a lock reads the newest version of the row it locked, but the rest of the statement keeps
# the snapshot it started with; so postings are never added to a locked row here (floored accounts have none).
_LOCK_ACCOUNTS = text(
    "WITH locked AS ("
    " SELECT id, currency, debits_posted, credits_posted, debits_pending, credits_pending, credit_limit_micros, floor"
    " FROM ledger_accounts WHERE id = ANY(CAST(:ids AS BIGINT[])) AND floor ORDER BY id FOR UPDATE),"
    " unfolded AS ("
    " SELECT account_id, SUM(debits_posted) AS dp, SUM(credits_posted) AS cp, SUM(debits_pending) AS dq,"
    " SUM(credits_pending) AS cq FROM account_postings WHERE account_id = ANY(CAST(:ids AS BIGINT[]))"
    " GROUP BY account_id)"
    " SELECT * FROM locked UNION ALL"
    " SELECT a.id, a.currency, CAST(a.debits_posted + COALESCE(u.dp, 0) AS BIGINT),"
    " CAST(a.credits_posted + COALESCE(u.cp, 0) AS BIGINT), CAST(a.debits_pending + COALESCE(u.dq, 0) AS BIGINT),"
    " CAST(a.credits_pending + COALESCE(u.cq, 0) AS BIGINT), a.credit_limit_micros, a.floor"
    " FROM ledger_accounts a LEFT JOIN unfolded u ON u.account_id = a.id"
    " WHERE a.id = ANY(CAST(:ids AS BIGINT[])) AND NOT a.floor"
)


def lock_accounts(connection: Connection, account_ids: Iterable[int]) -> dict[int, Account]:
    """Every account asked for as it stands, in one statement: those with a floor locked, in ascending id
    order (the one order every writer uses); those without one read as row plus unfolded postings, unlocked.

    On SQLite, ``BEGIN IMMEDIATE`` has serialized writers already: a plain read is current."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    if connection.dialect.name == "postgresql":
        rows = connection.execute(_LOCK_ACCOUNTS, {"ids": ids})
    else:
        rows = connection.execute(current_accounts(ids))
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
        floored = {i: account for i, account in outcome.accounts.items() if account.floor}
        postings = _postings(accounts, outcome.accounts)
        if _posted_at_once(connection, outcome):
            inserted = _insert_and_update(connection, outcome, floored, postings, now)
            if len(inserted) == len(outcome.transfers):
                return outcome
            # An earlier attempt: the statement wrote no account and appended no posting.
        else:
            inserted = _insert_new(connection, outcome.transfers)
            if len(inserted) == len(outcome.transfers):
                _update_accounts(connection, floored)
                _append_postings(connection, postings, now)
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


Posting = tuple[int, int, int, int, int]  # account id, then what a batch added to each of TOTALS


def _postings(before: dict[int, Account], after: dict[int, Account]) -> list[Posting]:
    """What the batch changed in each account without a floor: appended, never written to its row."""
    postings = []
    for account_id, account in after.items():
        if account.floor:
            continue
        was = before[account_id]
        change = (
            account.debits_posted - was.debits_posted,
            account.credits_posted - was.credits_posted,
            account.debits_pending - was.debits_pending,
            account.credits_pending - was.credits_pending,
        )
        if any(change):
            postings.append((account_id, *change))
    return postings


def _append_postings(connection: Connection, postings: Sequence[Posting], now: datetime) -> None:
    if postings:
        connection.execute(
            insert(account_postings),
            [dict(zip(("account_id", *TOTALS), posting, strict=True)) | {"created_at": now} for posting in postings],
        )


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
# a call's statements together (its columns, CTEs and cache key made anew each time). The accounts with a floor
# are written and the postings of those without appended only if every transfer was new (``complete``).
_INSERT_AND_UPDATE = text(
    "WITH inserted AS ("
    " INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_micros, currency, kind, reference,"
    " phase, pending_id, expires_at, overshoot_micros, exchange_rate, created_at)"
    " SELECT * FROM unnest(CAST(:id AS VARCHAR[]), CAST(:debit AS BIGINT[]), CAST(:credit AS BIGINT[]),"
    " CAST(:amount AS BIGINT[]), CAST(:currency AS VARCHAR[]), CAST(:kind AS VARCHAR[]), CAST(:reference AS VARCHAR[]),"
    " CAST(:phase AS VARCHAR[]), CAST(:pending_id AS VARCHAR[]), CAST(:expires_at AS TIMESTAMPTZ[]),"
    " CAST(:overshoot AS BIGINT[]), CAST(:exchange_rate AS VARCHAR[]), CAST(:created_at AS TIMESTAMPTZ[]))"
    " ON CONFLICT (id) DO NOTHING RETURNING id),"
    " complete AS (SELECT count(*) = CAST(:transfers AS BIGINT) AS ok FROM inserted),"
    " written AS ("
    " UPDATE ledger_accounts SET debits_posted = v.dp, credits_posted = v.cp, debits_pending = v.dq,"
    " credits_pending = v.cq"
    " FROM unnest(CAST(:account AS BIGINT[]), CAST(:dp AS BIGINT[]), CAST(:cp AS BIGINT[]), CAST(:dq AS BIGINT[]),"
    " CAST(:cq AS BIGINT[])) AS v(id, dp, cp, dq, cq), complete"
    " WHERE ledger_accounts.id = v.id AND complete.ok RETURNING ledger_accounts.id),"
    " appended AS ("
    " INSERT INTO account_postings (account_id, debits_posted, credits_posted, debits_pending, credits_pending,"
    " created_at)"
    " SELECT v.id, v.dp, v.cp, v.dq, v.cq, CAST(:now AS TIMESTAMPTZ)"
    " FROM unnest(CAST(:posting AS BIGINT[]), CAST(:pdp AS BIGINT[]), CAST(:pcp AS BIGINT[]),"
    " CAST(:pdq AS BIGINT[]), CAST(:pcq AS BIGINT[])) AS v(id, dp, cp, dq, cq), complete"
    " WHERE complete.ok RETURNING id)"
    " SELECT (SELECT array_agg(id) FROM inserted), (SELECT count(*) FROM written), (SELECT count(*) FROM appended)"
)


def _insert_and_update(
    connection: Connection,
    outcome: Applied,
    floored: dict[int, Account],
    postings: Sequence[Posting],
    now: datetime,
) -> set[str]:
    """Insert the transfers whose id is free, write every touched account with a floor and append the
    postings of the others, in one statement (PostgreSQL): one round trip where a hot account's lock is
    held, not two. Answers the ids inserted: if one was taken, no account is written, no posting appended."""
    new, touched = outcome.transfers, list(floored.values())
    for transfer in new:  # what UtcDateTime checks on the way in: aware datetimes only
        if transfer.created_at.tzinfo is None or (transfer.expires_at and transfer.expires_at.tzinfo is None):
            raise ValueError("naive datetime given to a UTC column")
    if now.tzinfo is None:
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
            "transfers": len(new),
            "account": [a.id for a in touched],
            "dp": [a.debits_posted for a in touched],
            "cp": [a.credits_posted for a in touched],
            "dq": [a.debits_pending for a in touched],
            "cq": [a.credits_pending for a in touched],
            "posting": [p[0] for p in postings],
            "pdp": [p[1] for p in postings],
            "pcp": [p[2] for p in postings],
            "pdq": [p[3] for p in postings],
            "pcq": [p[4] for p in postings],
            "now": now,
        },
    ).one()
    inserted = set(row[0] or ())
    if len(inserted) == len(new):
        require(row[1] == len(touched), "a ledger account vanished while locked")
        require(row[2] == len(postings), "postings of a batch went missing")
    else:
        require(row[1] == 0 and row[2] == 0, "a batch with an earlier attempt wrote accounts")
    return inserted


def _update_accounts(connection: Connection, accounts: dict[int, Account]) -> None:
    """Write every touched account in one statement (psycopg pipelines an executemany: one round trip).

    Many accounts (a batch of 1,000 card sales touches 1,001) on PostgreSQL: one ``UPDATE … FROM
    unnest(…)`` with an array per column, not one statement per account."""
    if not accounts:
        return
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


# A fold, in one statement: the oldest postings name the accounts to fold; those accounts are locked, skipping
# any another fold holds (several processes share the work, never one account at once; NO KEY: a posting's or
# transfer's foreign key check, FOR KEY SHARE, goes on meanwhile); each one's postings up
# to the newest of those taken are deleted and their sums added to its row, relatively (``x = x + sum``: it
# commutes with anything else written). A posting deleted by another fold meanwhile is not returned here.
_FOLD = text(
    "WITH oldest AS (SELECT id, account_id FROM account_postings ORDER BY id LIMIT :limit),"
    " locked AS ("
    " SELECT id FROM ledger_accounts WHERE id IN (SELECT account_id FROM oldest) ORDER BY id"
    " FOR NO KEY UPDATE SKIP LOCKED),"
    " folded AS ("
    " DELETE FROM account_postings p USING locked"
    " WHERE p.account_id = locked.id AND p.id <= (SELECT max(id) FROM oldest)"
    " RETURNING p.account_id, p.debits_posted, p.credits_posted, p.debits_pending, p.credits_pending),"
    " sums AS ("
    " SELECT account_id, SUM(debits_posted) AS dp, SUM(credits_posted) AS cp, SUM(debits_pending) AS dq,"
    " SUM(credits_pending) AS cq FROM folded GROUP BY account_id),"
    " updated AS ("
    " UPDATE ledger_accounts a SET debits_posted = a.debits_posted + s.dp, credits_posted = a.credits_posted + s.cp,"
    " debits_pending = a.debits_pending + s.dq, credits_pending = a.credits_pending + s.cq"
    " FROM sums s WHERE a.id = s.account_id RETURNING a.id)"
    " SELECT (SELECT count(*) FROM folded), (SELECT count(*) FROM sums), (SELECT count(*) FROM updated)"
)


def fold_postings(connection: Connection, *, limit: int = FOLD_POSTINGS_MAX) -> int:
    """Fold up to ``limit`` of the oldest postings into their accounts' rows; answer how many were folded.

    Each account's postings are folded in id order up to a bound, so a row never holds a posting's
    release of a reservation without the posting that made it (its pending totals never go negative).
    Killed before commit, a fold leaves everything as it was."""
    require(0 < limit <= 100 * FOLD_POSTINGS_MAX, "a fold takes a bounded number of postings")
    if connection.dialect.name == "postgresql":
        folded, accounts, updated = connection.execute(_FOLD, {"limit": limit}).one()
        require(accounts == updated, "an account of folded postings vanished")
        return int(folded)
    # SQLite: writers are serialized already; the oldest postings, whole accounts' prefixes, in three statements.
    oldest = select(account_postings.c.id).order_by(account_postings.c.id).limit(limit).subquery()
    bound = connection.execute(select(func.max(oldest.c.id))).scalar()
    if bound is None:
        return 0
    p = account_postings.c
    taken = p.id <= bound
    sums = {
        name: select(func.coalesce(func.sum(p[name]), 0))
        .where(p.account_id == ledger_accounts.c.id, taken)
        .scalar_subquery()
        for name in TOTALS
    }
    connection.execute(
        update(ledger_accounts)
        .where(ledger_accounts.c.id.in_(select(p.account_id).where(taken)))
        .values({name: ledger_accounts.c[name] + sums[name] for name in TOTALS})
    )
    return int(connection.execute(account_postings.delete().where(taken)).rowcount)


def unfolded_count(connection: Connection) -> int:
    """How many postings wait to be folded (the settler's backlog)."""
    return int(connection.execute(select(func.count()).select_from(account_postings)).scalar_one())


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
