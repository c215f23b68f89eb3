"""Caller ids and FollowMe: a client's own line (``/line``), an organization's numbers (on its page) and an
extension's (on the extension's page), changed through ``tollway/lines/service.py`` as the API changes them.

A client adds the numbers it wants to present (each waits until an owner above verifies it holds it) and
chooses its default; an extension takes its organization's verified numbers; an organization's owners
verify its numbers. FollowMe (a client's or an extension's) is a list of numbers rung in turn, each for its
ring time. Who may see or change which line is the one rule: another's line answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Response

from tollway.access.model import Role
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.lines import service as lines
from tollway.portal.i18n import N_
from tollway.portal.line_forms import LINE_SAVED, follow_me_entries, line_values
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.accounts import account_page
from tollway.portal.pages.organizations import extension_page, organization_page
from tollway.portal.web import CustomerDep, SignedInDep, StaffDep, Visitor, redirect, render

router = APIRouter()
NAVIGATION = (NavItem("/line", N_("Caller ID and FollowMe"), frozenset({Role.CLIENT}), order=30),)
CALLER_ID_ACTIONS = ("add", "default", "remove", "verify")
NumberField = Annotated[str, Form(max_length=32)]
ActionField = Annotated[str, Form(max_length=8)]
Rows = Annotated[list[str] | None, Form()]


def client_line_page(visitor: Visitor, *, error: Refusal | None = None) -> Response:
    if visitor.role is not Role.CLIENT:
        raise NotFound("page", "/line")
    line = lines.get_line(visitor.database, login=visitor.login, principal=visitor.principal)
    return render(
        visitor,
        "line.html",
        status_code=status_for(error) if error else 200,
        values={
            "saved": LINE_SAVED.get(visitor.request.query_params.get("saved", "")),
            "error": refusal_text(visitor, error) if error else None,
            **line_values(visitor, line, "/line"),
        },
    )


@router.get("/line")
def client_line(visitor: CustomerDep) -> Response:
    return client_line_page(visitor)


def _caller_id(
    visitor: Visitor,
    *,
    login: str,
    extension: str | None,
    do: str,
    number: str,
    back: str,
    page: Callable[[Refusal], Response],
) -> Response:
    database, principal = visitor.database, visitor.principal
    try:
        if do == "add":
            lines.add_caller_id(database, login=login, extension=extension, number=number, principal=principal)
        elif do == "default":
            lines.set_default_caller_id(database, login=login, extension=extension, number=number, principal=principal)
        elif do == "remove":
            lines.remove_caller_id(database, login=login, extension=extension, number=number, principal=principal)
        elif do == "verify" and extension is None:
            lines.verify_caller_id(database, login=login, number=number, principal=principal)
        else:
            raise Refusal("request_invalid", f"{do!r} is not something done to a caller id")
    except Refusal as refusal:
        if isinstance(refusal, NotFound) and refusal.reason != "caller_id_not_found":
            raise  # the line itself: 404, as if it did not exist
        return page(refusal)
    return redirect(f"{back}?saved=caller_id")


def _follow_me(
    visitor: Visitor,
    *,
    login: str,
    extension: str | None,
    numbers: list[str] | None,
    rings: list[str] | None,
    back: str,
    page: Callable[[Refusal], Response],
) -> Response:
    try:
        entries = follow_me_entries(numbers or [], rings or [])
        lines.set_follow_me(
            visitor.database, login=login, extension=extension, entries=entries, principal=visitor.principal
        )
    except Refusal as refusal:
        if isinstance(refusal, NotFound):
            raise
        return page(refusal)
    return redirect(f"{back}?saved=follow_me")


@router.post("/line/caller-ids")
def client_caller_id(visitor: CustomerDep, do: ActionField = "", number: NumberField = "") -> Response:
    if visitor.role is not Role.CLIENT:
        raise NotFound("page", "/line/caller-ids")
    return _caller_id(
        visitor,
        login=visitor.login,
        extension=None,
        do=do if do != "verify" else "",
        number=number,
        back="/line",
        page=lambda refusal: client_line_page(visitor, error=refusal),
    )


@router.post("/line/follow-me")
def client_follow_me(visitor: CustomerDep, number: Rows = None, ring_seconds: Rows = None) -> Response:
    if visitor.role is not Role.CLIENT:
        raise NotFound("page", "/line/follow-me")
    return _follow_me(
        visitor,
        login=visitor.login,
        extension=None,
        numbers=number,
        rings=ring_seconds,
        back="/line",
        page=lambda refusal: client_line_page(visitor, error=refusal),
    )


@router.post("/accounts/{login}/caller-ids")
def account_caller_id(visitor: StaffDep, login: str, do: ActionField = "", number: NumberField = "") -> Response:
    """A client's numbers, as its owners see them: verify one it added, add one (verified), remove one."""
    return _caller_id(
        visitor,
        login=login,
        extension=None,
        do=do,
        number=number,
        back=f"/accounts/{login}",
        page=lambda refusal: account_page(visitor, login, error=refusal),
    )


@router.post("/organizations/{login}/caller-ids")
def organization_caller_id(
    visitor: SignedInDep, login: str, do: ActionField = "", number: NumberField = ""
) -> Response:
    """The organization's own numbers, which its extensions may take once verified."""
    return _caller_id(
        visitor,
        login=login,
        extension=None,
        do=do,
        number=number,
        back=f"/organizations/{login}",
        page=lambda refusal: organization_page(visitor, login, error=refusal),
    )


@router.post("/organizations/{login}/extensions/{extension}/caller-ids")
def extension_caller_id(
    visitor: SignedInDep, login: str, extension: str, do: ActionField = "", number: NumberField = ""
) -> Response:
    return _caller_id(
        visitor,
        login=login,
        extension=extension,
        do=do,
        number=number,
        back=f"/organizations/{login}/extensions/{extension}",
        page=lambda refusal: extension_page(visitor, login, extension, error=refusal),
    )


@router.post("/organizations/{login}/extensions/{extension}/follow-me")
def extension_follow_me(
    visitor: SignedInDep, login: str, extension: str, number: Rows = None, ring_seconds: Rows = None
) -> Response:
    return _follow_me(
        visitor,
        login=login,
        extension=extension,
        numbers=number,
        rings=ring_seconds,
        back=f"/organizations/{login}/extensions/{extension}",
        page=lambda refusal: extension_page(visitor, login, extension, error=refusal),
    )
