"""A second factor for the logins that move other people's money: time-based one-time codes (TOTP, RFC 6238).

Provider admins, reseller admins and agents may turn it on; once on, their password alone opens no session
(in the portal, nor over the API). Enrolment: ``enrol`` makes a secret (shown once, as text and as a QR
code) and keeps it sealed (tollway/sealing.py: a copy of the database alone gives no secret away); the
first right code (``confirm``) turns it on. Every code works once (the last step used is kept), and wrong
codes are throttled like wrong passwords, on their own count, which a right password does not reset:
knowing the password does not buy more guesses at the code. A lost phone: an admin above the login turns
it off (``reset``), as it would reset the login's password.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import pyotp
from sqlalchemy import Connection, select, update

from tollway.access import store as access_store
from tollway.access.audit import audit
from tollway.access.model import Principal, Role
from tollway.access.service import lockout_seconds, principal_of_user, require_user_below
from tollway.clock import utc_now
from tollway.errors import Refusal, present
from tollway.store.database import Database
from tollway.store.schema import users
from tollway.tree import store as tree_store

ROLES_WITH_SECOND_FACTOR = frozenset({Role.PROVIDER_ADMIN, Role.RESELLER_ADMIN, Role.AGENT})
STEP_SECONDS = 30
STEPS_TOLERATED = 1  # a code of the step before or after is accepted too: clocks drift
CODE_DIGITS = 6


class Seal(Protocol):
    """What sealing offers (tollway.sealing.Sealer)."""

    def seal(self, plaintext: str) -> str: ...

    def unseal(self, sealed: str) -> str: ...


@dataclass(frozen=True, slots=True)
class SecondFactor:
    sealed_secret: str | None
    confirmed_at: datetime | None
    last_step: int | None
    failed: int
    locked_until: datetime | None

    @property
    def on(self) -> bool:
        return self.sealed_secret is not None and self.confirmed_at is not None


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str  # base32: shown once, typed or scanned into the authenticator app
    uri: str  # otpauth://: what the QR code holds


def _read(connection: Connection, user_id: int, *, lock: bool = False) -> SecondFactor:
    query = select(
        users.c.totp_secret_sealed,
        users.c.totp_confirmed_at,
        users.c.totp_last_step,
        users.c.totp_failed,
        users.c.totp_locked_until,
    ).where(users.c.id == user_id)
    row = present(connection.execute(query.with_for_update() if lock else query).first(), f"user {user_id}")
    return SecondFactor(*row)


def _write(connection: Connection, user_id: int, **values: object) -> None:
    connection.execute(update(users).where(users.c.id == user_id).values(**values))


def _require_role(principal: Principal) -> int:
    if principal.role not in ROLES_WITH_SECOND_FACTOR or principal.user_id is None:
        raise Refusal("second_factor_not_offered", "a second factor is for provider, reseller and agent logins")
    return principal.user_id


def required(database: Database, *, user_id: int) -> bool:
    """Whether this user's password alone may open no session."""
    with database.reading() as connection:
        return _read(connection, user_id).on


def status(database: Database, principal: Principal) -> SecondFactor:
    with database.reading() as connection:
        return _read(connection, _require_role(principal))


def _step_matched(secret: str, code: str, *, at: float) -> int | None:
    """The time step whose code ``code`` is (within the tolerated drift), or None."""
    digits = code.strip().replace(" ", "")
    if len(digits) != CODE_DIGITS or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_SECONDS)
    now_step = int(at // STEP_SECONDS)
    for step in range(now_step - STEPS_TOLERATED, now_step + STEPS_TOLERATED + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


def enrol(database: Database, principal: Principal, *, sealer: Seal, issuer: str) -> Enrolment:
    """A new secret for the principal's own login, off until its first code is confirmed."""
    user_id = _require_role(principal)
    secret = pyotp.random_base32()

    def use_case(connection: Connection) -> str:
        if _read(connection, user_id, lock=True).on:
            raise Refusal("second_factor_on", "the second factor is already on: turn it off first")
        _write(connection, user_id, totp_secret_sealed=sealer.seal(secret), totp_confirmed_at=None, totp_last_step=None)
        login = present(connection.execute(select(users.c.login).where(users.c.id == user_id)).scalar(), "login")
        return str(login)

    login = database.run(use_case)
    return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer))


def _checked(
    connection: Connection, user_id: int, factor: SecondFactor, code: str, *, sealer: Seal, now: datetime
) -> int | None:
    """The step of a right code, its use recorded; None for a wrong one, counted (and throttled)."""
    if factor.locked_until is not None and factor.locked_until > now:
        raise Refusal("login_throttled", "too many wrong codes: try again later")
    secret = sealer.unseal(present(factor.sealed_secret, "second factor secret"))
    step = _step_matched(secret, code, at=now.timestamp())
    if step is None or (factor.last_step is not None and step <= factor.last_step):
        failed = factor.failed + 1
        pause = lockout_seconds(failed)
        _write(
            connection,
            user_id,
            totp_failed=failed,
            totp_locked_until=now + timedelta(seconds=pause) if pause else None,
        )
        return None
    _write(connection, user_id, totp_last_step=step, totp_failed=0, totp_locked_until=None)
    return step


def confirm(database: Database, principal: Principal, *, sealer: Seal, code: str) -> None:
    """Turn the second factor on with the first right code of the enrolled secret."""
    user_id = _require_role(principal)
    now = utc_now()

    def use_case(connection: Connection) -> bool:
        factor = _read(connection, user_id, lock=True)
        if factor.sealed_secret is None or factor.on:
            raise Refusal("second_factor_not_enrolling", "start the enrolment first")
        if _checked(connection, user_id, factor, code, sealer=sealer, now=now) is None:
            return False
        _write(connection, user_id, totp_confirmed_at=now)
        node = tree_store.get_node(connection, principal.place.node_id)
        audit(
            connection,
            principal,
            action="user.second_factor",
            target_type="user",
            target_id=user_id,
            node=node,
            after={"on": True},
        )
        return True

    if not database.run(use_case):  # the wrong code's count is committed before refusing
        raise Refusal("code_wrong", "the code is wrong or was used already")


def turn_off(database: Database, principal: Principal, *, sealer: Seal, code: str) -> None:
    """Turn the second factor off, which takes a right code of it."""
    user_id = _require_role(principal)
    now = utc_now()

    def use_case(connection: Connection) -> bool:
        factor = _read(connection, user_id, lock=True)
        if not factor.on:
            raise Refusal("second_factor_off", "the second factor is not on")
        if _checked(connection, user_id, factor, code, sealer=sealer, now=now) is None:
            return False
        _write(connection, user_id, totp_secret_sealed=None, totp_confirmed_at=None, totp_last_step=None)
        node = tree_store.get_node(connection, principal.place.node_id)
        audit(
            connection,
            principal,
            action="user.second_factor",
            target_type="user",
            target_id=user_id,
            node=node,
            after={"on": False},
        )
        return True

    if not database.run(use_case):
        raise Refusal("code_wrong", "the code is wrong or was used already")


def reset(database: Database, principal: Principal | None, *, login: str) -> int:
    """An owner turns off the second factor of a user below it (a lost phone): its secret is forgotten and
    every session of the user closed; the user logs in with its password alone and may set up a new one in
    its settings. Who may: as for a password reset (``access.service.require_user_below``): a user above or
    beside the principal is not found. Answers how many sessions were closed."""
    now = utc_now()

    def use_case(connection: Connection) -> int:
        user, node = require_user_below(connection, principal, login, what="second_factor")
        if not _read(connection, user.id, lock=True).on:
            raise Refusal("second_factor_off", "the second factor of this user is not on")
        _write(
            connection,
            user.id,
            totp_secret_sealed=None,
            totp_confirmed_at=None,
            totp_last_step=None,
            totp_failed=0,
            totp_locked_until=None,
        )
        closed = access_store.revoke_sessions_of(connection, user.id, now=now)
        audit(
            connection,
            principal,
            action="user.second_factor_reset",
            target_type="user",
            target_id=user.login,
            node=node,
            before={"on": True},
            after={"on": False, "sessions_closed": closed},
        )
        return closed

    return database.run(use_case)


def verify(database: Database, *, user_id: int, code: str, sealer: Seal, now: datetime | None = None) -> Principal:
    """The second step of a login whose password was right: the principal, or a refusal (counted)."""
    instant = now or utc_now()

    def use_case(connection: Connection) -> Principal | None:
        factor = _read(connection, user_id, lock=True)
        if not factor.on:
            raise Refusal("second_factor_off", "the second factor is not on")
        if _checked(connection, user_id, factor, code, sealer=sealer, now=instant) is None:
            return None
        return principal_of_user(connection, user_id)

    principal = database.run(use_case)
    if principal is None:
        raise Refusal("code_wrong", "the code is wrong or was used already")
    return principal


def code_now(secret: str, *, at: float | None = None) -> str:
    """The code an authenticator shows now (for tests and for the command line's own checks)."""
    return pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_SECONDS).at(int(at if at is not None else time.time()))
