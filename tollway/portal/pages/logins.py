"""The logins of an account, for the admins above it: a new password, and a second factor turned off.

``/accounts/<login>/logins`` lists the account's users (login, role, whether it may log in, whether its
two-step verification is on), never their secrets, for the provider's and resellers' admins who see the
account (``access.logins_of``). For a user strictly below the visitor:

- **A new password** (``access.reset_password``): generated, shown this once on the answer to the form
  (``Cache-Control: no-store``), on no other page; every session of the user ends.
- **Turn off its two-step verification** (``second_factor.reset``, a lost phone): the user logs in with its
  password alone, and sets up a new authenticator in its settings; every session of the user ends.

Both are audited (``user.password_reset``, ``user.second_factor_reset``). A user above or beside the visitor
is not found (404), exactly as one that does not exist; one of the visitor's own account is refused: each
changes its own in its settings.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tollway.access import second_factor
from tollway.access import service as access
from tollway.errors import NotFound
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.web import AdminDep, Visitor, redirect, render
from tollway.tree import service as tree

router = APIRouter()
SAVED = {"second_factor_reset": N_("Two-step verification is off for this login; its sessions are closed.")}
ROLES = {
    "provider_admin": N_("Provider admin"),
    "reseller_admin": N_("Reseller admin"),
    "agent": N_("Agent"),
    "client": N_("Client"),
    "organization_admin": N_("Organization admin"),
    "organization_user": N_("Organization user"),
}


def _logins_page(visitor: Visitor, login: str) -> Response:
    node = tree.get_node(visitor.database, visitor.principal, login=login)
    users, _ = access.logins_of(visitor.database, visitor.principal, node_login=login)
    saved = visitor.request.query_params.get("saved", "")
    return render(
        visitor,
        "logins.html",
        values={
            "node": node,
            "users": users,
            "below": node.id != visitor.principal.place.node_id,
            "roles": ROLES,
            "statuses": staff.STATUSES,
            "saved": SAVED.get(saved),
        },
    )


@router.get("/accounts/{login}/logins")
def logins(visitor: AdminDep, login: str, saved: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _logins_page(visitor, login)


def _user_of(visitor: Visitor, login: str, user: str) -> None:
    """The user named in the address is one of that account's, or there is no such page."""
    users, _ = access.logins_of(visitor.database, visitor.principal, node_login=login)
    if user not in {found.login for found in users}:
        raise NotFound("user", user)


@router.post("/accounts/{login}/logins/{user}/password")
def new_password(visitor: AdminDep, login: str, user: str) -> Response:
    _user_of(visitor, login, user)
    password = access.reset_password(visitor.database, visitor.principal, login=user)
    return render(visitor, "login_password.html", values={"account": login, "user": user, "password": password})


@router.post("/accounts/{login}/logins/{user}/second-factor/reset")
def reset_second_factor(visitor: AdminDep, login: str, user: str) -> Response:
    _user_of(visitor, login, user)
    second_factor.reset(visitor.database, visitor.principal, login=user)
    return redirect(f"/accounts/{login}/logins?saved=second_factor_reset")
