"""A batch made for a person at a screen: its CSV of logins and passwords is downloaded once, then gone.

The API answers a batch with its CSV at once; a web page cannot (a person must first see the batch is
made, then save the file), so the file is held for one download by the login that made the batch, for
``HOLD_SECONDS`` at most. It is sealed (Fernet) with a key derived from a random token that only that
login's browser receives: the database holds the token's digest and a sealed file it cannot open, so a
copy of it gives no password away. The download deletes the row as it reads it: a second one finds
nothing. Passwords are never logged nor audited (the audit log records the batch and its logins).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection

from tollway.access.model import Principal, Role
from tollway.agents import store
from tollway.agents.batch import BatchResult, create_batch_in, to_csv
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.store.database import Database
from tollway.tree import store as tree_store

HOLD_SECONDS = 30 * 60  # a batch's CSV waits this long for its one download
TOKEN_BYTES = 32
TOKEN_LENGTH_MAX = 64  # a token as sent back (43 characters of URL-safe base64)


@dataclass(frozen=True, slots=True)
class HeldBatch:
    """A batch just made, without its passwords: they wait in the file ``token`` downloads once."""

    batch_id: str
    owner: str
    profile: str
    agent: str | None
    currency: str
    initial_balance_micros: int
    count: int
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class BatchFile:
    filename: str
    content: str


def _digest(token: str) -> str:
    return hashlib.sha256(b"tollway batch download id:" + token.encode()).hexdigest()


def _fernet(token: str) -> Fernet:
    key = hashlib.sha256(b"tollway batch download key:" + token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _user_of(principal: Principal | None) -> int:
    if principal is None or principal.user_id is None:
        raise Refusal("login_required", "a batch's file is held for the login that makes it")
    return principal.user_id


def create_batch_for_download(
    database: Database,
    *,
    profile_name: str,
    count: int,
    batch_id: str,
    principal: Principal | None,
    owner_login: str | None = None,
    initial_balance_micros: int = 0,
    agent_login: str | None = None,
) -> HeldBatch:
    """``batch.create_batch``, its CSV held for one download, in the same transaction: no batch is made
    whose passwords could not be fetched. ``owner_login`` None: an agent's own reseller."""
    user_id = _user_of(principal)

    def use_case(connection: Connection) -> HeldBatch:
        owner = owner_login or _agents_reseller(connection, principal)
        made = create_batch_in(
            connection,
            owner_login=owner,
            profile_name=profile_name,
            count=count,
            batch_id=batch_id,
            initial_balance_micros=initial_balance_micros,
            agent_login=agent_login,
            principal=principal,
        )
        now = utc_now()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = now + timedelta(seconds=HOLD_SECONDS)
        store.hold_download(
            connection,
            digest=_digest(token),
            batch_id=made.batch_id,
            user_id=user_id,
            sealed=_fernet(token).encrypt(to_csv(made).encode()).decode(),
            expires_at=expires_at,
            now=now,
        )
        return _held(made, token, expires_at)

    return database.run(use_case)


def _agents_reseller(connection: Connection, principal: Principal | None) -> str:
    if principal is None or principal.role is not Role.AGENT:
        raise Refusal("owner_required", "name the reseller the accounts are made below")
    agent = present(tree_store.get_node(connection, principal.place.node_id), "the principal's node")
    reseller_id = present(agent.parent_id, "an agent's reseller")
    return present(tree_store.get_node(connection, reseller_id), "the agent's reseller").login


def _held(made: BatchResult, token: str, expires_at: datetime) -> HeldBatch:
    return HeldBatch(
        batch_id=made.batch_id,
        owner=made.owner,
        profile=made.profile,
        agent=made.agent,
        currency=made.currency,
        initial_balance_micros=made.initial_balance_micros,
        count=len(made.accounts),
        token=token,
        expires_at=expires_at,
    )


def take_batch_file(database: Database, *, token: str, principal: Principal | None) -> BatchFile:
    """The held CSV, once, to the login that made the batch; to anyone else, a second time, or after
    ``HOLD_SECONDS``: not found."""
    user_id = _user_of(principal)
    if not 0 < len(token) <= TOKEN_LENGTH_MAX:
        raise NotFound("download", "batch file")

    def use_case(connection: Connection) -> BatchFile:
        found = store.take_download(connection, digest=_digest(token), user_id=user_id, now=utc_now())
        if found is None:
            raise NotFound("download", "batch file")
        batch_id, sealed = found
        try:
            content = _fernet(token).decrypt(sealed.encode()).decode()
        except InvalidToken:  # the digest matched, so the token is right: the row was altered
            raise RuntimeError(f"the held file of batch {batch_id} does not open with its token") from None
        return BatchFile(filename=f"{batch_id}.csv", content=content)

    return database.run(use_case)
