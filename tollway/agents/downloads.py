"""A batch made for a person at a screen: its CSV of logins and passwords is downloaded once, then gone.

The file is held for one download by the login that made the batch, for ``HOLD_SECONDS`` at most
(tollway/access/held_files.py: sealed with a key only its maker's browser holds, deleted by the download).
Passwords are never logged nor audited (the audit log records the batch and its logins).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from tollway.access import held_files
from tollway.access.model import Principal, Role
from tollway.agents.batch import BatchResult, create_batch_in, to_csv
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.store.database import Database
from tollway.tree import store as tree_store

HOLD_SECONDS = 30 * 60  # a batch's CSV waits this long for its one download
TOKEN_LENGTH_MAX = held_files.TOKEN_LENGTH_MAX
KIND = "accounts"


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
        held = held_files.hold(
            connection,
            kind=KIND,
            name=made.batch_id,
            content=to_csv(made),
            user_id=user_id,
            seconds=HOLD_SECONDS,
            now=utc_now(),
        )
        return _held(made, held.token, held.expires_at)

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

    def use_case(connection: Connection) -> BatchFile:
        found = held_files.take(connection, kind=KIND, token=token, user_id=user_id, now=utc_now())
        if found is None:
            raise NotFound("download", "batch file")
        batch_id, content = found
        return BatchFile(filename=f"{batch_id}.csv", content=content)

    return database.run(use_case)
