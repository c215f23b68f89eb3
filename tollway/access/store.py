"""Persistence of users, API keys and audit entries, inside the caller's transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tollway.access.model import Action, Role
from tollway.errors import present
from tollway.store.schema import api_keys, audit_log, held_files, login_throttles, sessions, users

AUDIT_PAGE_SIZE_MAX = 500


@dataclass(frozen=True, slots=True)
class User:
    id: int
    node_id: int
    login: str
    password_hash: str
    role: Role
    active: bool
    failed_logins: int
    locked_until: datetime | None
    second_factor_on: bool = False  # its TOTP confirmed: its password alone opens no session


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    key_id: str
    secret_hash: str
    node_id: int
    role: Role
    actions: frozenset[Action]
    name: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any
    after: Any
    request_id: str | None


def _user(row: Row[Any]) -> User:
    return User(
        row.id,
        row.node_id,
        row.login,
        row.password_hash,
        Role(row.role),
        row.status == "active",
        row.failed_logins,
        row.locked_until,
        row.totp_secret_sealed is not None and row.totp_confirmed_at is not None,
    )


def _api_key(row: Row[Any]) -> ApiKey:
    actions = frozenset(Action(a) for a in row.actions.split(",") if a)
    return ApiKey(
        row.id, row.key_id, row.secret_hash, row.node_id, Role(row.role), actions, row.name, row.revoked_at is not None
    )


def insert_user(
    connection: Connection, *, node_id: int, login: str, password_hash: str, role: Role, now: datetime
) -> User:
    result = connection.execute(
        insert(users).values(
            node_id=node_id,
            login=login,
            password_hash=password_hash,
            role=str(role),
            status="active",
            failed_logins=0,
            created_at=now,
        )
    )
    return present(get_user(connection, int(result.inserted_primary_key[0])), "user just inserted")  # type: ignore[index]


def get_user(connection: Connection, user_id: int) -> User | None:
    row = connection.execute(select(users).where(users.c.id == user_id)).first()
    return None if row is None else _user(row)


def find_user(connection: Connection, login: str, *, lock: bool = False) -> User | None:
    query = select(users).where(users.c.login == login)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _user(row)


def update_user(connection: Connection, user_id: int, **values: Any) -> None:
    connection.execute(update(users).where(users.c.id == user_id).values(**values))


def insert_api_key(
    connection: Connection,
    *,
    key_id: str,
    secret_hash: str,
    node_id: int,
    role: Role,
    actions: frozenset[Action],
    name: str,
    created_by: str,
    now: datetime,
) -> ApiKey:
    connection.execute(
        insert(api_keys).values(
            key_id=key_id,
            secret_hash=secret_hash,
            node_id=node_id,
            role=str(role),
            actions=",".join(sorted(actions)),
            name=name,
            created_by=created_by,
            created_at=now,
        )
    )
    return present(find_api_key(connection, key_id), "API key just inserted")


def find_api_key(connection: Connection, key_id: str) -> ApiKey | None:
    row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    return None if row is None else _api_key(row)


def revoke_api_key(connection: Connection, key_id: str, *, now: datetime) -> None:
    connection.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=now))


def insert_audit(
    connection: Connection,
    *,
    at: datetime,
    actor: str,
    actor_node_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    node_path: str | None,
    before: Any,
    after: Any,
    request_id: str | None,
) -> None:
    connection.execute(
        insert(audit_log).values(
            at=at,
            actor=actor,
            actor_node_id=actor_node_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            node_path=node_path,
            request_id=request_id,
            before=None if before is None else json.dumps(before, sort_keys=True, default=str),
            after=None if after is None else json.dumps(after, sort_keys=True, default=str),
        )
    )


def list_audit(
    connection: Connection,
    *,
    path_prefix: str,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """Entries about nodes under ``path_prefix``, newest first, one bounded page, optionally filtered (by
    action, target, actor, and the instants ``[since, until)`` they were written at)."""
    query = select(audit_log).where(audit_log.c.node_path.startswith(path_prefix, autoescape=True))
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    for column, value in ((audit_log.c.action, action), (audit_log.c.target_id, target_id), (audit_log.c.actor, actor)):
        if value is not None:
            query = query.where(column == value)
    rows = connection.execute(query.order_by(audit_log.c.id.desc()).limit(min(limit, AUDIT_PAGE_SIZE_MAX)))
    return [
        AuditEntry(
            r.id,
            r.at,
            r.actor,
            r.action,
            r.target_type,
            r.target_id,
            None if r.before is None else json.loads(r.before),
            None if r.after is None else json.loads(r.after),
            r.request_id,
        )
        for r in rows
    ]


def list_users(connection: Connection, node_id: int, *, limit: int) -> list[User]:
    rows = connection.execute(select(users).where(users.c.node_id == node_id).order_by(users.c.id).limit(limit))
    return [_user(row) for row in rows]


def list_api_keys(connection: Connection, node_id: int, *, limit: int) -> list[ApiKey]:
    rows = connection.execute(
        select(api_keys).where(api_keys.c.node_id == node_id).order_by(api_keys.c.id).limit(limit)
    )
    return [_api_key(row) for row in rows]


@dataclass(frozen=True, slots=True)
class StoredSession:
    user_id: int
    csrf_token: str
    expires_at: datetime
    revoked: bool


def insert_session(
    connection: Connection, *, token_hash: str, csrf_token: str, user_id: int, expires_at: datetime, now: datetime
) -> None:
    connection.execute(
        insert(sessions).values(
            token_hash=token_hash, csrf_token=csrf_token, user_id=user_id, created_at=now, expires_at=expires_at
        )
    )


def find_session(connection: Connection, token_hash: str) -> StoredSession | None:
    row = connection.execute(select(sessions).where(sessions.c.token_hash == token_hash)).first()
    return (
        None if row is None else StoredSession(row.user_id, row.csrf_token, row.expires_at, row.revoked_at is not None)
    )


def revoke_session(connection: Connection, token_hash: str, *, now: datetime) -> None:
    connection.execute(
        update(sessions)
        .where(sessions.c.token_hash == token_hash, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_sessions_of(
    connection: Connection, user_id: int, *, now: datetime, except_token_hash: str | None = None
) -> int:
    """Close every open session of a user (but one, when given); how many were closed."""
    query = update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if except_token_hash is not None:
        query = query.where(sessions.c.token_hash != except_token_hash)
    return connection.execute(query.values(revoked_at=now)).rowcount


def ensure_throttles(connection: Connection, keys: list[str], *, now: datetime) -> None:
    """Give each key a row (no failures) if it has none, so that there is a row to count on."""
    insert_for = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    for key in keys:
        statement = insert_for(login_throttles).values(key=key, failures=0, blocked_until=None, updated_at=now)
        connection.execute(statement.on_conflict_do_nothing(index_elements=[login_throttles.c.key]))


def count_attempt(connection: Connection, key: str, *, now: datetime) -> int | None:
    """One more attempt on ``key``, in one statement (atomic under any concurrency): the failures now
    counted, or None while the key is blocked (then nothing is counted)."""
    row = connection.execute(
        update(login_throttles)
        .where(
            login_throttles.c.key == key,
            or_(login_throttles.c.blocked_until.is_(None), login_throttles.c.blocked_until <= now),
        )
        .values(failures=login_throttles.c.failures + 1, updated_at=now)
        .returning(login_throttles.c.failures)
    ).first()
    return None if row is None else int(row.failures)


def block_until(connection: Connection, key: str, until: datetime | None, *, now: datetime) -> None:
    connection.execute(
        update(login_throttles).where(login_throttles.c.key == key).values(blocked_until=until, updated_at=now)
    )


def forgive_attempt(connection: Connection, key: str, *, clear: bool, now: datetime) -> None:
    """An attempt proved right: forget every failure (``clear``) or only this attempt's own count."""
    failures = 0 if clear else login_throttles.c.failures - 1
    connection.execute(
        update(login_throttles)
        .where(login_throttles.c.key == key, login_throttles.c.failures > 0)
        .values(failures=failures, updated_at=now)
    )


def failures_of(connection: Connection, key: str) -> int:
    row = connection.execute(select(login_throttles.c.failures).where(login_throttles.c.key == key)).first()
    return 0 if row is None else int(row.failures)


def user_language(connection: Connection, user_id: int) -> str | None:
    """The portal language a login chose (None: its node's)."""
    language: str | None = connection.execute(select(users.c.language).where(users.c.id == user_id)).scalar()
    return language


# -- files held for one download (tollway.access.held_files) ------------------------------------------------


def hold_file(
    connection: Connection,
    *,
    digest: str,
    kind: str,
    name: str,
    user_id: int,
    sealed: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    connection.execute(delete(held_files).where(held_files.c.expires_at <= now))  # the forgotten ones
    connection.execute(
        insert(held_files).values(
            digest=digest,
            kind=kind,
            name=name,
            user_id=user_id,
            sealed=sealed,
            expires_at=expires_at,
            created_at=now,
        )
    )


def take_file(connection: Connection, *, digest: str, kind: str, user_id: int, now: datetime) -> tuple[str, str] | None:
    """The held file's name and sealed content, deleted as it is read: of two readers, one gets it."""
    row = connection.execute(
        delete(held_files)
        .where(
            held_files.c.digest == digest,
            held_files.c.kind == kind,
            held_files.c.user_id == user_id,
            held_files.c.expires_at > now,
        )
        .returning(held_files.c.name, held_files.c.sealed)
    ).first()
    return None if row is None else (str(row.name), str(row.sealed))
