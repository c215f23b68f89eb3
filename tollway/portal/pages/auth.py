"""Logging in (password, then the second factor where it is on), logging out, the language before login.

A login opens the same session the API's ``POST /api/v1/sessions`` opens (tollway/access/service.py):
an HttpOnly, SameSite=Strict cookie, Secure unless ``cookie_secure`` is off. Between a right password and
a right code, the browser holds only a sealed, short-lived note of who is half-way in (``tollway_pending``):
no session exists until the code is right.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Response

from tollway.access import second_factor
from tollway.access import service as access
from tollway.access.model import Principal
from tollway.errors import Refusal, TollwayError
from tollway.http.client import client_address
from tollway.http.errors import status_for
from tollway.portal import i18n
from tollway.portal.messages import refusal_text
from tollway.portal.web import (
    CSRF_COOKIE,
    LANGUAGE_COOKIE,
    LANGUAGE_COOKIE_SECONDS,
    SESSION_COOKIE,
    Visitor,
    VisitorDep,
    redirect,
    render,
    safe_next,
)

router = APIRouter()
PENDING_COOKIE = "tollway_pending"
PENDING_SECONDS = 300  # the time to type the code after the password
FIELD_LENGTH_MAX = 200


def _cookie(visitor: Visitor, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=visitor.settings.cookie_secure,
        samesite="strict",
        path="/",
    )


def _forget(visitor: Visitor, response: Response, *names: str) -> None:
    for name in names:
        response.delete_cookie(name, path="/", httponly=True, secure=visitor.settings.cookie_secure, samesite="strict")


def _login_page(visitor: Visitor, *, next_path: str, login: str = "", error: Refusal | None = None) -> Response:
    return render(
        visitor,
        "login.html",
        status_code=status_for(error) if error else 200,
        values={"next": next_path, "login": login, "error": refusal_text(visitor, error) if error else None},
    )


@router.get("/login")
def login_page(visitor: VisitorDep, next: Annotated[str, Query(max_length=400)] = "/") -> Response:
    if visitor.holder is not None:
        return redirect(safe_next(next))
    return _login_page(visitor, next_path=safe_next(next))


def _signed_in(visitor: Visitor, principal: Principal, next_path: str) -> Response:
    session = access.open_session(visitor.database, principal)
    response = redirect(next_path)
    _cookie(visitor, response, SESSION_COOKIE, session.token, max_age=int(session.expires_at.timestamp() - time.time()))
    _forget(visitor, response, CSRF_COOKIE, PENDING_COOKIE)
    return response


@router.post("/login")
def log_in(
    visitor: VisitorDep,
    login: Annotated[str, Form(max_length=FIELD_LENGTH_MAX)] = "",
    password: Annotated[str, Form(max_length=FIELD_LENGTH_MAX)] = "",
    next: Annotated[str, Form(max_length=400)] = "/",
) -> Response:
    next_path = safe_next(next)
    try:
        principal = access.login_with_password(
            visitor.database, login=login.strip(), password=password, address=client_address(visitor.request)
        )
    except Refusal as refusal:
        return _login_page(visitor, next_path=next_path, login=login, error=refusal)
    user_id = principal.user_id
    if user_id is not None and second_factor.required(visitor.database, user_id=user_id):
        sealer = visitor.settings.sealer
        if sealer is None:
            return _login_page(
                visitor, next_path=next_path, login=login, error=Refusal("second_factor_unavailable", "no secret key")
            )
        response = redirect(f"/login/code?next={quote(next_path, safe='')}")
        pending = sealer.seal(f"{user_id}:{int(time.time()) + PENDING_SECONDS}")
        _cookie(visitor, response, PENDING_COOKIE, pending, max_age=PENDING_SECONDS)
        return response
    return _signed_in(visitor, principal, next_path)


def _pending_user(visitor: Visitor) -> int:
    """Who is half-way in: the user whose password was right a moment ago, from the sealed cookie."""
    sealed = visitor.request.cookies.get(PENDING_COOKIE, "")
    sealer = visitor.settings.sealer
    expired = Refusal("second_factor_expired", "log in with your password again")
    if not sealed or sealer is None:
        raise expired
    try:
        user_text, until_text = sealer.unseal(sealed).split(":")
        user_id, until = int(user_text), int(until_text)
    except (ValueError, TollwayError):  # a cookie that does not open, or opens to something else
        raise expired from None
    if until < time.time():
        raise expired
    return user_id


@router.get("/login/code")
def code_page(visitor: VisitorDep, next: Annotated[str, Query(max_length=400)] = "/") -> Response:
    try:
        _pending_user(visitor)
    except Refusal as refusal:
        return _login_page(visitor, next_path=safe_next(next), error=refusal)
    return render(visitor, "login_code.html", values={"next": safe_next(next), "error": None})


@router.post("/login/code")
def enter_code(
    visitor: VisitorDep,
    code: Annotated[str, Form(max_length=20)] = "",
    next: Annotated[str, Form(max_length=400)] = "/",
) -> Response:
    next_path = safe_next(next)
    try:
        user_id = _pending_user(visitor)
        principal = second_factor.verify(
            visitor.database, user_id=user_id, code=code, sealer=visitor.settings.sealer or _no_sealer()
        )
    except Refusal as refusal:
        if refusal.reason == "second_factor_expired":
            return _login_page(visitor, next_path=next_path, error=refusal)
        error = refusal_text(visitor, refusal)
        return render(
            visitor, "login_code.html", status_code=status_for(refusal), values={"next": next_path, "error": error}
        )
    return _signed_in(visitor, principal, next_path)


def _no_sealer() -> second_factor.Seal:
    raise Refusal("second_factor_unavailable", "no secret key is configured")


@router.post("/logout")
def log_out(visitor: VisitorDep) -> Response:
    token = visitor.request.cookies.get(SESSION_COOKIE)
    if token:
        access.close_session(visitor.database, token)
    response = redirect("/login")
    _forget(visitor, response, SESSION_COOKIE)
    return response


@router.get("/language/{language}")
def choose_language(
    visitor: VisitorDep,
    language: str,
    next: Annotated[str, Query(max_length=400)] = "/login",
) -> Response:
    """Before logging in: the language of the login page (a signed-in login sets its own in its settings)."""
    response = redirect(safe_next(next))
    if language in i18n.LANGUAGES:
        _cookie(visitor, response, LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_SECONDS)
    return response
