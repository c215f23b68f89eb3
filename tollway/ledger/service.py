"""Ledger use cases that are not about one node: raw batches, expiring reservations, the check."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


def check(database: Database) -> CheckReport:
    with database.reading() as connection:
        return check_ledger(connection)
