"""The first page after logging in: a customer's account at a glance; a staff login's own balance."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tollway.access.model import Action
from tollway.balances import service as balances
from tollway.notifications import service as notices
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.web import CUSTOMER_ROLES, STAFF_ROLES, SignedInDep, Visitor, render
from tollway.rating import subscriptions

router = APIRouter()
NAVIGATION = (
    NavItem("/", N_("My account"), CUSTOMER_ROLES, order=10),
    NavItem("/", N_("Home"), STAFF_ROLES, order=10),
)


def _customer_home(visitor: Visitor) -> Response:
    principal, login = visitor.principal, visitor.login
    balance = balances.get_balance(visitor.database, login=login, principal=principal)
    plans = None  # an organization's users see its balance, not what it pays for its plans
    if Action.TARIFFS_READ in principal.actions:
        plans = subscriptions.subscriptions_of(visitor.database, login=login, principal=principal)
    warning = notices.get_notices(visitor.database, principal, login=login)
    return render(
        visitor,
        "home_customer.html",
        values={"balance": balance, "plans": plans, "threshold_micros": warning.effective_threshold_micros},
    )


@router.get("/")
def home(visitor: SignedInDep) -> Response:
    if visitor.role in CUSTOMER_ROLES:
        return _customer_home(visitor)
    balance = balances.get_balance(visitor.database, login=visitor.login, principal=visitor.principal)
    return render(visitor, "home_staff.html", values={"balance": balance})
