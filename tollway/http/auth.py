"""Who is calling: an API key (``Authorization: Bearer tw_…``) or a portal session cookie.

A session's changes (any method but GET/HEAD/OPTIONS) must carry its CSRF token in the
``X-CSRF-Token`` header: a page of another site can make the browser send the cookie, never the header.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from tollway.access import service as access
from tollway.access.model import Principal
from tollway.errors import Refusal
from tollway.store.database import Database

SESSION_COOKIE = "tollway_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def database_of(request: Request) -> Database:  # no I/O: async, so no trip through the thread pool
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(database_of)]


def current_principal(request: Request, database: DatabaseDep) -> Principal:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return access.login_with_api_key(database, plaintext=authorization[7:].strip())
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Refusal("authentication_required", "send an API key (Authorization: Bearer) or log in")
    principal, csrf_token = access.principal_for_session(database, token)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token.encode()):
            raise Refusal("csrf_failed", f"a change made with a session needs its {CSRF_HEADER} header")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
