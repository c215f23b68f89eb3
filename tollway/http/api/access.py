"""Logging in (sessions), users and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tollway.access import second_factor
from tollway.access import service as access
from tollway.errors import Refusal
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import (
    PAGE_SIZE_DEFAULT,
    ApiKeyIn,
    ApiKeyOut,
    AuditEntryOut,
    BeforeId,
    LoginsOut,
    PageSize,
    PasswordChangeIn,
    PasswordChangeOut,
    PasswordResetOut,
    SessionIn,
    SessionOut,
    UserIn,
    UserOut,
)
from tollway.http.auth import SESSION_COOKIE, DatabaseDep, PrincipalDep
from tollway.http.client import client_address

router = APIRouter(tags=["access"], responses=ERRORS)  # type: ignore[arg-type]


@router.post("/sessions", summary="Log in with a password: sets the session cookie, returns the CSRF token")
def open_session(body: SessionIn, request: Request, response: Response, database: DatabaseDep) -> SessionOut:
    principal = access.login_with_password(
        database, login=body.login, password=body.password, address=client_address(request)
    )
    if principal.user_id is not None and second_factor.required(database, user_id=principal.user_id):
        sealer = request.app.state.sealer
        if body.code is None or sealer is None:
            raise Refusal("second_factor_required", "this login has two-step verification: send its code too")
        principal = second_factor.verify(database, user_id=principal.user_id, code=body.code, sealer=sealer)
    session = access.open_session(database, principal)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        secure=request.app.state.cookie_secure,
        samesite="strict",
        expires=session.expires_at,
        path="/",
    )
    return SessionOut(
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
        role=principal.role,
        node_id=principal.place.node_id,
    )


@router.delete(
    "/sessions/current",
    status_code=204,
    response_class=Response,
    summary="Log out: the session ends everywhere at once",
)
def close_session(request: Request, response: Response, database: DatabaseDep, _principal: PrincipalDep) -> None:
    access.close_session(database, request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, secure=request.app.state.cookie_secure, samesite="strict"
    )


@router.post("/nodes/{login}/users", status_code=201, summary="Give a node a login")
def create_user(login: str, body: UserIn, database: DatabaseDep, principal: PrincipalDep) -> UserOut:
    user = access.create_user(
        database, principal, node_login=login, login=body.login, password=body.password, role=body.role
    )
    return UserOut(id=user.id, login=user.login, role=user.role, node_id=user.node_id)


@router.post("/nodes/{login}/api-keys", status_code=201, summary="Make an API key: shown once, stored hashed")
def create_api_key(login: str, body: ApiKeyIn, database: DatabaseDep, principal: PrincipalDep) -> ApiKeyOut:
    key, plaintext = access.create_api_key(
        database,
        principal,
        node_login=login,
        name=body.name,
        role=body.role,
        actions=body.actions,
    )
    return ApiKeyOut(key_id=key.key_id, name=key.name, role=key.role, actions=sorted(key.actions), api_key=plaintext)


@router.get("/nodes/{login}/logins", summary="A node's users and API keys (no secrets)")
def list_logins(login: str, database: DatabaseDep, principal: PrincipalDep) -> LoginsOut:
    users, keys = access.logins_of(database, principal, node_login=login)
    return LoginsOut(
        users=[UserOut(id=u.id, login=u.login, role=u.role, node_id=u.node_id) for u in users],
        api_keys=[
            ApiKeyOut(key_id=k.key_id, name=k.name, role=k.role, actions=sorted(k.actions), revoked=k.revoked)
            for k in keys
        ],
    )


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
def revoke_api_key(key_id: str, database: DatabaseDep, principal: PrincipalDep) -> None:
    access.revoke_api_key(database, principal, key_id=key_id)


@router.get("/audit", summary="Who changed what in your subtree, newest first")
def read_audit(
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before_id: Annotated[BeforeId | None, Query()] = None,
    action: Annotated[str | None, Query(max_length=40, examples=["money.topup"])] = None,
    target_id: Annotated[str | None, Query(max_length=128, examples=["alice"])] = None,
    actor: Annotated[str | None, Query(max_length=40, examples=["api_key:3"])] = None,
) -> list[AuditEntryOut]:
    entries = access.read_audit(
        database, principal, limit=limit, before_id=before_id, action=action, target_id=target_id, actor=actor
    )
    return [
        AuditEntryOut(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target_type=e.target_type,
            target_id=e.target_id,
            before=e.before,
            after=e.after,
            request_id=e.request_id,
        )
        for e in entries
    ]


@router.put(
    "/users/{login}/password", summary="Change your own password (the current one needed); ends your other sessions"
)
def change_password(
    login: str, body: PasswordChangeIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> PasswordChangeOut:
    closed = access.change_password(
        database,
        principal,
        login=login,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session_token=request.cookies.get(SESSION_COOKIE),
        address=client_address(request),
    )
    return PasswordChangeOut(sessions_closed=closed)


@router.post("/users/{login}/password-reset", summary="Give a user below you a new password: shown once")
def reset_password(login: str, database: DatabaseDep, principal: PrincipalDep) -> PasswordResetOut:
    return PasswordResetOut(login=login, password=access.reset_password(database, principal, login=login))
