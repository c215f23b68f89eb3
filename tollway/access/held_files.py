"""A secret file for one person, once: the logins and passwords of a batch of accounts, the serials and PINs
of a batch of calling cards. The API answers a batch with its file at once; a web page cannot (a person must
first see the batch is made, then save the file), so the file is held for one download by the login that
made it, for a few minutes at most.

It is sealed (Fernet) with a key derived from a random token that only that login's browser receives: the
database holds the token's digest and a sealed file it cannot open, so a copy of the database (or of the
database and the installation's secret key) gives no password or PIN away. The download deletes the row as
it reads it: a second one, another login's or a late one finds nothing. One mechanism for every kind of
batch (``kind``), so there is one place to get it right.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection

from tollway.access import store

TOKEN_BYTES = 32
TOKEN_LENGTH_MAX = 64  # a token as sent back (43 characters of URL-safe base64)


@dataclass(frozen=True, slots=True)
class Held:
    token: str  # for the maker's browser only: it downloads the file, once
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(b"tollway held file id:" + token.encode()).hexdigest()


def _fernet(token: str) -> Fernet:
    key = hashlib.sha256(b"tollway held file key:" + token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def hold(
    connection: Connection, *, kind: str, name: str, content: str, user_id: int, seconds: int, now: datetime
) -> Held:
    """Hold ``content`` for one download by ``user_id``, ``seconds`` at most, in the caller's transaction
    (with the batch it belongs to: no batch is made whose file could not be fetched)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(seconds=seconds)
    store.hold_file(
        connection,
        digest=_digest(token),
        kind=kind,
        name=name,
        user_id=user_id,
        sealed=_fernet(token).encrypt(content.encode()).decode(),
        expires_at=expires_at,
        now=now,
    )
    return Held(token, expires_at)


def take(connection: Connection, *, kind: str, token: str, user_id: int, now: datetime) -> tuple[str, str] | None:
    """The file held under ``token`` for ``user_id`` (its name and content), once: None if it was taken
    already, expired, is another login's or another kind's, or the token is not one."""
    if not 0 < len(token) <= TOKEN_LENGTH_MAX:
        return None
    found = store.take_file(connection, digest=_digest(token), kind=kind, user_id=user_id, now=now)
    if found is None:
        return None
    name, sealed = found
    try:
        return name, _fernet(token).decrypt(sealed.encode()).decode()
    except InvalidToken:  # the digest matched, so the token is right: the row was altered
        raise RuntimeError(f"the held file {kind}:{name} does not open with its token") from None
