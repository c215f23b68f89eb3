"""Use cases of access: users, password logins with throttling, API keys, principals, the audit log."""

from __future__ import annotations

import hashlib
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from tollway.access import credentials
from tollway.access import store as access_store
from tollway.access.audit import audit
from tollway.access.model import (
    ROLE_ACTIONS,
    Action,
    Forbidden,
    Principal,
    Role,
    authorize,
    check_mint,
    hidden_from,
    place_of,
    role_fits,
)
from tollway.access.store import ApiKey, AuditEntry, User
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.store.database import Database
from tollway.store.static import static_version
from tollway.tree import model as tree_model
from tollway.tree import store as tree_store
from tollway.tree.model import Node, Status

FAILED_LOGINS_FREE = 5  # attempts on one login before throttling starts
FAILED_LOGINS_FREE_PER_ADDRESS = 20  # attempts from one address, on any logins (offices share one address)
LOCKOUT_SECONDS_FIRST = 2
LOCKOUT_SECONDS_MAX = 15 * 60
LOGIN_KEY_PREFIX = "login:"
ADDRESS_KEY_PREFIX = "address:"


def _principal(
    connection: Connection,
    node_id: int,
    role: Role,
    actions: frozenset[Action],
    *,
    user_id: int | None = None,
    api_key_id: int | None = None,
) -> Principal:
    node = present(tree_store.get_node(connection, node_id), f"node {node_id}")
    chain = tree_store.chain(connection, node)
    if tree_model.effective_status([n.status for n in chain]) is not Status.ACTIVE:
        raise Refusal("account_blocked", "this account or one above it is suspended or closed")
    return Principal(place_of(node), role, actions, user_id=user_id, api_key_id=api_key_id)


def create_user(
    database: Database, principal: Principal | None, *, node_login: str, login: str, password: str, role: Role
) -> User:
    """Give a node a login. ``principal`` None means the operator at the command line."""
    password_hash = credentials.hash_password(password)  # slow on purpose: outside the transaction
    now = utc_now()

    def use_case(connection: Connection) -> User:
        node = tree_store.find_node(connection, node_login)
        if node is None:
            raise NotFound("node", node_login)
        authorize(principal, Action.USER_MANAGE, node)
        if not role_fits(role, node.position.kind):
            raise Refusal("role_does_not_fit", f"the role {role} does not fit a {node.position}")
        check_mint(principal, {"role": ROLE_ACTIONS[role]})
        if access_store.find_user(connection, tree_model.check_login(login)) is not None:
            raise Refusal("login_taken", f"the login {login!r} is taken")
        user = access_store.insert_user(
            connection, node_id=node.id, login=login, password_hash=password_hash, role=role, now=now
        )
        audit(
            connection,
            principal,
            action="user.create",
            target_type="user",
            target_id=user.id,
            node=node,
            after={"login": login, "role": str(role)},
        )
        return user

    return database.run(use_case)


def lockout_seconds(failed_logins: int, *, free: int = FAILED_LOGINS_FREE) -> int:
    """Doubling pauses after the free attempts, capped: guessing gets slow fast."""
    if failed_logins < free:
        return 0
    return int(min(LOCKOUT_SECONDS_FIRST * 2 ** (failed_logins - free), LOCKOUT_SECONDS_MAX))


def _throttle_keys(login: str, address: str | None) -> list[tuple[str, int]]:
    """The counters an attempt is counted on, in one order (no deadlock), each with its free attempts.

    Keyed by the login as typed, existing or not: a login that does not exist is throttled alike.
    """
    keys = [(LOGIN_KEY_PREFIX + login[:63], FAILED_LOGINS_FREE)]
    if address:
        keys.append((ADDRESS_KEY_PREFIX + address[:64], FAILED_LOGINS_FREE_PER_ADDRESS))
    return sorted(keys)


def count_attempt(database: Database, *, login: str, address: str | None, now: datetime) -> None:
    """Count a password attempt as failed *before* its password is checked (one transaction, one
    statement per counter), so attempts sent at once cannot all be checked; ``login_throttled`` while
    the login or the address is blocked (nothing is counted then)."""

    def use_case(connection: Connection) -> None:
        keys = _throttle_keys(login, address)
        access_store.ensure_throttles(connection, [key for key, _ in keys], now=now)
        for key, free in keys:
            failures = access_store.count_attempt(connection, key, now=now)
            if failures is None:
                raise Refusal("login_throttled", "too many failed attempts: try again later")
            pause = lockout_seconds(failures, free=free)
            if pause:
                access_store.block_until(connection, key, now + timedelta(seconds=pause), now=now)

    database.run(use_case)


def _forgive_attempt(connection: Connection, *, login: str, address: str | None, now: datetime) -> None:
    """The password was right: the login starts afresh; the address only takes back this attempt's count."""
    for key, free in _throttle_keys(login, address):
        is_login = key.startswith(LOGIN_KEY_PREFIX)
        access_store.forgive_attempt(connection, key, clear=is_login, now=now)
        if is_login or access_store.failures_of(connection, key) < free:
            access_store.block_until(connection, key, None, now=now)


def login_with_password(
    database: Database, *, login: str, password: str, now: datetime | None = None, address: str | None = None
) -> Principal:
    """A user's principal for a right password. ``address`` is where the attempt comes from (the HTTP
    client's, see tollway.http.client); the attempt is counted on the login and the address first."""
    instant = now or utc_now()
    count_attempt(database, login=login, address=address, now=instant)
    with database.reading() as connection:
        user = access_store.find_user(connection, login)
    # Always verify something, so the time taken does not reveal whether the login exists.
    ok = credentials.verify_password(user.password_hash if user else credentials.DUMMY_PASSWORD_HASH, password)
    if user is None or not user.active or not ok:
        raise Refusal("login_failed", "wrong login or password")  # already counted

    def use_case(connection: Connection) -> Principal:
        current = present(access_store.find_user(connection, login, lock=True), f"user {login}")
        _forgive_attempt(connection, login=login, address=address, now=instant)
        values: dict[str, Any] = {"last_login_at": instant}
        if credentials.password_needs_rehash(current.password_hash) and current.password_hash == user.password_hash:
            values["password_hash"] = credentials.hash_password(password)
        access_store.update_user(connection, current.id, **values)
        return _principal(connection, current.node_id, current.role, ROLE_ACTIONS[current.role], user_id=current.id)

    return database.run(use_case)


def _user_principal(connection: Connection, user_id: int) -> Principal:
    user = access_store.get_user(connection, user_id)
    if user is None or not user.active:
        raise Refusal("session_invalid", "the session's user no longer exists or is disabled")
    return _principal(connection, user.node_id, user.role, ROLE_ACTIONS[user.role], user_id=user.id)


def create_api_key(
    database: Database,
    principal: Principal | None,
    *,
    node_login: str,
    name: str,
    role: Role,
    actions: Iterable[Action] | None = None,
) -> tuple[ApiKey, str]:
    """A key for machines, scoped to a node and a subset of its role's actions. The plaintext is shown once."""
    new_key = credentials.new_api_key()
    now = utc_now()

    def use_case(connection: Connection) -> ApiKey:
        node = tree_store.find_node(connection, node_login)
        if node is None:
            raise NotFound("node", node_login)
        authorize(principal, Action.USER_MANAGE, node)
        if not role_fits(role, node.position.kind):
            raise Refusal("role_does_not_fit", f"the role {role} does not fit a {node.position}")
        scope = ROLE_ACTIONS[role] if actions is None else frozenset(actions)
        if not scope <= ROLE_ACTIONS[role]:
            raise Refusal("scope_wider_than_role", "an API key may only narrow what its role may do")
        check_mint(principal, {"actions": scope})
        key = access_store.insert_api_key(
            connection,
            key_id=new_key.key_id,
            secret_hash=new_key.secret_hash,
            node_id=node.id,
            role=role,
            actions=scope,
            name=tree_model.check_name(name),
            created_by=principal.label if principal else "cli",
            now=now,
        )
        audit(
            connection,
            principal,
            action="api_key.create",
            target_type="api_key",
            target_id=key.key_id,
            node=node,
            after={"name": name, "role": str(role), "actions": sorted(scope)},
        )
        return key

    return database.run(use_case), new_key.plaintext


def revoke_api_key(database: Database, principal: Principal | None, *, key_id: str) -> None:
    def use_case(connection: Connection) -> None:
        key = access_store.find_api_key(connection, key_id)
        node = tree_store.get_node(connection, key.node_id) if key else None
        if key is None or node is None or hidden_from(principal, node):
            raise NotFound("api_key", key_id)  # never the login of a node out of sight
        authorize(principal, Action.USER_MANAGE, node)
        if key.revoked:
            raise Refusal("api_key_revoked", "the key is already revoked")
        access_store.revoke_api_key(connection, key_id, now=utc_now())
        audit(
            connection,
            principal,
            action="api_key.revoke",
            target_type="api_key",
            target_id=key_id,
            node=node,
            before={"revoked": False},
            after={"revoked": True},
        )

    database.run(use_case)


# A key that logged in is remembered with the static version it was checked at; while that version holds
# (every change to a key or a node bumps it, tollway.store.static), its next logins cost one small query.
# A revoked key, or one whose node was suspended, is refused at its very next request, in every process.
API_KEYS_REMEMBERED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class _KnownKey:
    principal: Principal
    version: int  # the static version it was checked at


class _KnownKeys:
    """Principals of API keys that logged in, by database and by a digest of the whole key (a wrong secret
    never matches one): a switch's key on every call costs one small query, not three."""

    def __init__(self) -> None:
        self._keys: weakref.WeakKeyDictionary[Database, dict[bytes, _KnownKey]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, database: Database, digest: bytes) -> _KnownKey | None:
        with self._lock:
            return self._keys.get(database, {}).get(digest)

    def put(self, database: Database, digest: bytes, known: _KnownKey) -> None:
        with self._lock:
            keys = self._keys.setdefault(database, {})
            if len(keys) >= API_KEYS_REMEMBERED_MAX:
                keys.clear()
            keys[digest] = known

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


KNOWN_KEYS = _KnownKeys()


def login_with_api_key(database: Database, *, plaintext: str) -> Principal:
    def check(connection: Connection) -> Principal:
        parts = credentials.split_api_key(plaintext)
        key = access_store.find_api_key(connection, parts[0]) if parts else None
        if key is None or parts is None or key.revoked or not credentials.secret_matches(parts[1], key.secret_hash):
            raise Refusal("api_key_invalid", "the API key is unknown, revoked or wrong")
        return _principal(connection, key.node_id, key.role, key.actions, api_key_id=key.id)

    return _remembered(database, b"key:" + hashlib.sha256(plaintext.encode()).digest(), check)


def principal_of_api_key(database: Database, *, key_id: str) -> Principal:
    """The principal of a key the caller already trusts (a registered switch's), by its public id: the same
    checks as a login with it but the secret's (revoked, its node or one above it blocked)."""

    def check(connection: Connection) -> Principal:
        key = access_store.find_api_key(connection, key_id)
        if key is None or key.revoked:
            raise Refusal("api_key_invalid", "the API key is unknown or revoked")
        return _principal(connection, key.node_id, key.role, key.actions, api_key_id=key.id)

    return _remembered(database, b"id:" + key_id.encode(), check)


def _remembered(database: Database, digest: bytes, check: Callable[[Connection], Principal]) -> Principal:
    """The principal ``check`` finds, unless it was found already at the static version that is current."""
    known = KNOWN_KEYS.get(database, digest)
    with database.reading() as connection:
        version = static_version(connection)
        if known is not None and known.version == version:
            return known.principal
        principal = check(connection)
    KNOWN_KEYS.put(database, digest, _KnownKey(principal, version))
    return principal


def read_audit(
    database: Database,
    principal: Principal,
    *,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """The audit entries about the principal's own subtree, newest first, optionally filtered (``since`` and
    ``until``: written within ``[since, until)``)."""
    with database.reading() as connection:
        node = present(tree_store.get_node(connection, principal.place.node_id), "principal's node")
        authorize(principal, Action.AUDIT_READ, node)
        return access_store.list_audit(
            connection,
            path_prefix=node.path,
            limit=limit,
            before_id=before_id,
            action=action,
            target_id=target_id,
            actor=actor,
            since=since,
            until=until,
        )


SESSION_LIFETIME = timedelta(hours=12)
SESSION_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the cookie's value: shown once, stored hashed
    csrf_token: str  # sent back by the browser in a header on every change
    expires_at: datetime


def open_session(database: Database, principal: Principal) -> Session:
    """A portal session for a user who has just logged in with a password."""
    if principal.user_id is None:
        raise Refusal("session_needs_user", "only a user's login opens a session")
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    session = Session(token, secrets.token_urlsafe(SESSION_TOKEN_BYTES), utc_now() + SESSION_LIFETIME)

    def use_case(connection: Connection) -> Session:
        user = access_store.get_user(connection, present(principal.user_id, "user id"))
        if user is None or not user.active:
            raise Refusal("session_invalid", "the session's user no longer exists or is disabled")
        check_mint(principal, {"session": ROLE_ACTIONS[user.role]})  # a session is its own user's, no more
        access_store.insert_session(
            connection,
            token_hash=credentials.hash_secret(token),
            csrf_token=session.csrf_token,
            user_id=present(principal.user_id, "user id"),
            expires_at=session.expires_at,
            now=utc_now(),
        )
        return session

    return database.run(use_case)


def principal_for_session(database: Database, token: str) -> tuple[Principal, str]:
    """The principal behind a session cookie and the CSRF token its changes must carry (one connection)."""
    with database.reading() as connection:
        stored = access_store.find_session(connection, credentials.hash_secret(token))
        if stored is None or stored.revoked or stored.expires_at <= utc_now():
            raise Refusal("session_invalid", "the session is unknown, expired or closed: log in again")
        return _user_principal(connection, stored.user_id), stored.csrf_token


def close_session(database: Database, token: str) -> None:
    database.run(
        lambda connection: access_store.revoke_session(connection, credentials.hash_secret(token), now=utc_now())
    )


LIST_SIZE_MAX = 500


def logins_of(database: Database, principal: Principal | None, *, node_login: str) -> tuple[list[User], list[ApiKey]]:
    """A node's users and API keys (never their secrets), for whoever manages its logins."""
    with database.reading() as connection:
        node = tree_store.find_node(connection, node_login)
        if node is None:
            raise NotFound("node", node_login)
        authorize(principal, Action.USER_MANAGE, node)
        return (
            access_store.list_users(connection, node.id, limit=LIST_SIZE_MAX),
            access_store.list_api_keys(connection, node.id, limit=LIST_SIZE_MAX),
        )


RESET_PASSWORD_LENGTH = 16  # letters and digits from a cryptographic source: ~95 bits


def _require_user(
    connection: Connection, principal: Principal | None, login: str, *, lock: bool = False
) -> tuple[User, Node]:
    """A user and its node; ``user_not_found`` for one that does not exist or whose node is out of sight."""
    user = access_store.find_user(connection, login, lock=lock)
    node = None if user is None else tree_store.get_node(connection, user.node_id)
    if user is None or node is None or hidden_from(principal, node):
        raise NotFound("user", login)
    return user, node


def change_password(
    database: Database,
    principal: Principal | None,
    *,
    login: str,
    current_password: str,
    new_password: str,
    keep_session_token: str | None = None,
    address: str | None = None,
) -> int:
    """A user changes its own password, giving the current one (counted and throttled as a login is).
    Every other session of the user is closed, all but ``keep_session_token`` (the one asking); answers how
    many were closed. ``principal`` None is the operator at the command line, who still needs the current
    password (``tollway user reset-password`` is the operator's way without it)."""
    with database.reading() as connection:
        user, node = _require_user(connection, principal, login)
    if principal is not None and principal.user_id != user.id:
        authorize(principal, Action.NODE_READ, node)  # not found if out of sight; forbidden if not itself
        raise Forbidden(
            Action.USER_MANAGE,
            reason="own_password_only",
            message="a user changes its own password, logged in as itself; an owner resets another's",
        )
    count_attempt(database, login=login, address=address, now=utc_now())
    if not credentials.verify_password(user.password_hash, current_password):
        raise Refusal("current_password_wrong", "the current password is wrong")
    if new_password == current_password:
        raise Refusal("password_unchanged", "the new password is the current one")
    new_hash = credentials.hash_password(new_password)  # slow on purpose: outside the transaction

    def use_case(connection: Connection) -> int:
        current, _ = _require_user(connection, principal, login, lock=True)
        if current.password_hash != user.password_hash:
            raise Refusal("password_changed_meanwhile", "the password was changed meanwhile: try again")
        now = utc_now()
        _forgive_attempt(connection, login=login, address=address, now=now)
        access_store.update_user(connection, current.id, password_hash=new_hash)
        kept = None if keep_session_token is None else credentials.hash_secret(keep_session_token)
        closed = access_store.revoke_sessions_of(connection, current.id, now=now, except_token_hash=kept)
        audit(
            connection,
            principal,
            action="user.password_change",
            target_type="user",
            target_id=current.login,
            node=node,
            after={"sessions_closed": closed},
        )
        return closed

    return database.run(use_case)


def require_user_below(
    connection: Connection, principal: Principal | None, login: str, *, what: str
) -> tuple[User, Node]:
    """A user an owner may reset (its password, its second factor), locked: on a node strictly below the
    principal's (``user:manage`` there), and whose role holds nothing the principal does not (it could log
    in as it). A user above or beside it, or out of sight, is not found, exactly as one that does not exist;
    a user of its own node is refused (``<what>_reset_below_only``): each changes its own, knowing it."""
    user, node = _require_user(connection, principal, login, lock=True)
    authorize(principal, Action.USER_MANAGE, node)
    if principal is not None and node.id == principal.place.node_id:
        raise Forbidden(
            Action.USER_MANAGE,
            reason=f"{what}_reset_below_only",
            message=f"an owner resets the {what.replace('_', ' ')} of users below it; change your own yourself",
        )
    check_mint(principal, {"role": ROLE_ACTIONS[user.role]})
    return user, node


def reset_password(database: Database, principal: Principal | None, *, login: str) -> str:
    """An owner gives a user below it a new password, generated and answered this once (stored hashed);
    every session of the user is closed and its failed attempts forgotten (``require_user_below``)."""
    password = credentials.generate_secret(RESET_PASSWORD_LENGTH)
    new_hash = credentials.hash_password(password)  # slow on purpose: outside the transaction

    def use_case(connection: Connection) -> str:
        user, node = require_user_below(connection, principal, login, what="password")
        now = utc_now()
        access_store.update_user(connection, user.id, password_hash=new_hash)
        _forgive_attempt(connection, login=login, address=None, now=now)
        closed = access_store.revoke_sessions_of(connection, user.id, now=now)
        audit(
            connection,
            principal,
            action="user.password_reset",
            target_type="user",
            target_id=user.login,
            node=node,
            after={"sessions_closed": closed},
        )
        return password

    return database.run(use_case)


# -- the portal's view of a session ------------------------------------------------------------------


def principal_of_user(connection: Connection, user_id: int) -> Principal:
    """The principal of a user who has proved who it is (a password, then a second factor)."""
    return _user_principal(connection, user_id)


@dataclass(frozen=True, slots=True)
class SessionHolder:
    """Who holds a session, as a page needs it: the principal, the CSRF token, the login and its node."""

    principal: Principal
    csrf_token: str
    login: str
    language: str | None  # the login's own choice; None: its node's
    node: tree_model.Node


def session_holder(database: Database, token: str) -> SessionHolder:
    """The principal behind a session cookie with its login and node, in one read."""
    with database.reading() as connection:
        stored = access_store.find_session(connection, credentials.hash_secret(token))
        if stored is None or stored.revoked or stored.expires_at <= utc_now():
            raise Refusal("session_invalid", "the session is unknown, expired or closed: log in again")
        principal = _user_principal(connection, stored.user_id)
        user = present(access_store.get_user(connection, stored.user_id), f"user {stored.user_id}")
        node = present(tree_store.get_node(connection, principal.place.node_id), f"node {principal.place.node_id}")
        return SessionHolder(
            principal, stored.csrf_token, user.login, access_store.user_language(connection, user.id), node
        )


def set_login_language(database: Database, principal: Principal, *, language: str | None) -> None:
    """The portal's language for the principal's own login (None: its node's)."""
    user_id = principal.user_id
    if user_id is None:
        raise Refusal("session_needs_user", "only a person's login has a language")
    checked = None if language is None else tree_model.check_language(language)

    def use_case(connection: Connection) -> None:
        before = access_store.user_language(connection, user_id)
        access_store.update_user(connection, user_id, language=checked)
        node = tree_store.get_node(connection, principal.place.node_id)
        audit(
            connection,
            principal,
            action="user.language",
            target_type="user",
            target_id=user_id,
            node=node,
            before={"language": before},
            after={"language": checked},
        )

    database.run(use_case)
