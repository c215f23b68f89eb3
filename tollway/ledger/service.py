"""Ledger use cases that are not about one node: raw batches, expiring reservations, the settler, the check."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from tollway.clock import utc_now
from tollway.ledger import store
from tollway.ledger.check import CheckReport, check_ledger
from tollway.ledger.model import Applied, Phase, TransferKind, TransferRequest
from tollway.store.database import Database

EXPIRY_BATCH_SIZE = 200


def execute(database: Database, requests: Sequence[TransferRequest], *, now: datetime | None = None) -> Applied:
    """Record a linked batch of transfers in one transaction: all of them or none."""
    return database.run(lambda connection: store.execute(connection, requests, now=now or utc_now()))


def expiry_void_id(pending_id: str) -> str:
    """A fixed, repeatable id for the void of an expired reservation (any length of pending id)."""
    return "expired:" + hashlib.sha256(pending_id.encode()).hexdigest()[:40]


def void_expired(database: Database, *, now: datetime | None = None, batch_size: int = EXPIRY_BATCH_SIZE) -> int:
    """Void every pending transfer past its timeout; nothing reserved stays reserved forever.

    Each void is its own transaction, so processes running this at once only ever race on a
    pending transfer's single resolution, which the database allows once.
    """
    instant = now or utc_now()
    voided = 0
    while True:
        with database.reading() as connection:
            ids = store.expired_pending_ids(connection, now=instant, limit=batch_size)
        for pending_id in ids:
            request = TransferRequest(
                id=expiry_void_id(pending_id),
                amount_micros=None,
                kind=TransferKind.TRANSFER,
                phase=Phase.VOID,
                pending_id=pending_id,
            )
            try:
                execute(database, [request], now=instant)
                voided += 1
            except store.TransferRefused:
                pass  # resolved meanwhile by its owner or another process: nothing left to do
        if len(ids) < batch_size:
            return voided


def settle(
    database: Database,
    *,
    fold_size: int = store.FOLD_POSTINGS_MAX,
    budget_seconds: float | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Fold postings into their accounts, a fold (one transaction) at a time, until none is left, the
    budget is spent, or what is left is being folded by another process; answer how many were folded.

    Each fold commits on its own: stopped or killed between folds or in one, nothing is lost or counted
    twice, and the next run goes on from there."""
    started = time.monotonic()
    folded = 0
    while True:
        count = database.run(lambda connection: store.fold_postings(connection, limit=fold_size))
        folded += count
        if progress is not None and count:
            progress(count)
        if count < fold_size:
            return folded  # all folded, or the rest held by another process's fold
        if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
            return folded


def unfolded(database: Database) -> int:
    """The settler's backlog: postings not yet folded."""
    with database.reading() as connection:
        return store.unfolded_count(connection)


def check(database: Database) -> CheckReport:
    with database.reading() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for every statement of the check: a live ledger is seen at one instant.
            connection.execution_options(isolation_level="REPEATABLE READ")
        return check_ledger(connection)
