"""A seller's plans: the provider's and resellers' admins list and create their own plans (a fee per period,
included minutes, the destinations they cover) and see who holds each.

Only the login's own plans are here; another's answers 404 as one that does not exist. Giving a plan to a client
is the client's page's form (``pages/accounts.py``), which charges its first fee: the plan's page links there.
Reads and changes go through ``tollway.rating.subscriptions``, as the API's ``/plans`` routes do.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Response

from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.pages.shop import PERIOD_WORDS
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, redirect, render
from tollway.rating import subscriptions
from tollway.rating.plans import INCLUDED_SECONDS_MAX, PLAN_PREFIXES_MAX, Period
from tollway.rating.rates import PREFIX_DIGITS_MAX

router = APIRouter()
NAVIGATION = (NavItem("/plans", N_("Plans"), ADMIN_ROLES, order=31),)
PLANS_LISTED_MAX = 200
SUBSCRIBERS_LISTED_MAX = 200
MINUTES_DIGITS_MAX = 6
SAVED = {"created": N_("The plan is created.")}
STATUS_WORDS = {"active": N_("Active"), "suspended": N_("Suspended"), "ended": N_("Ended")}


def plan_path(name: str) -> str:
    return "/plans/" + quote(name, safe=":")


def _list_page(visitor: Visitor, *, error: Refusal | None = None, typed: dict[str, str] | None = None) -> Response:
    plans = subscriptions.list_plans(
        visitor.database, owner_login=visitor.login, limit=PLANS_LISTED_MAX, principal=visitor.principal
    )
    return render(
        visitor,
        "plans.html",
        status_code=status_for(error) if error else 200,
        values={
            "plans": [plan for _, plan in plans],
            "node": visitor.signed_in.node,
            "periods": [(period.value, PERIOD_WORDS[period.value]) for period in Period],
            "period_words": PERIOD_WORDS,
            "plan_path": plan_path,
            "error": refusal_text(visitor, error) if error else None,
            "typed": typed or {},
        },
    )


@router.get("/plans")
def plan_list(visitor: AdminDep) -> Response:
    return _list_page(visitor)


def _minutes(text: str) -> int:
    typed = text.strip() or "0"
    if not (typed.isascii() and typed.isdigit() and len(typed) <= MINUTES_DIGITS_MAX):
        raise Refusal("minutes_invalid", "included minutes are a whole number")
    if int(typed) * 60 > INCLUDED_SECONDS_MAX:
        raise Refusal("minutes_invalid", f"at most {INCLUDED_SECONDS_MAX // 60} minutes")
    return int(typed)


def _prefixes(text: str) -> tuple[str, ...]:
    """Prefixes typed apart by spaces or commas ('44 33, +49'); empty: every destination."""
    found = tuple(part.lstrip("+") for part in text.replace(",", " ").split())
    if len(found) > PLAN_PREFIXES_MAX:
        raise Refusal("plan_prefixes_invalid", f"at most {PLAN_PREFIXES_MAX} prefixes")
    for prefix in found:
        if not (prefix.isascii() and prefix.isdigit() and len(prefix) <= PREFIX_DIGITS_MAX):
            raise Refusal("plan_prefix_invalid", f"{prefix[: PREFIX_DIGITS_MAX + 1]!r} is not a prefix")
    return found


@router.post("/plans")
def create_plan(
    visitor: AdminDep,
    name: Annotated[str, Form(max_length=200)] = "",
    fee: Annotated[str, Form(max_length=40)] = "",
    period: Annotated[str, Form(max_length=16)] = "month",
    included_minutes: Annotated[str, Form(max_length=20)] = "",
    prefixes: Annotated[str, Form(max_length=20_000)] = "",
    rollover: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    typed = {
        "name": name,
        "fee": fee,
        "period": period,
        "included_minutes": included_minutes,
        "prefixes": prefixes,
        "rollover": rollover,
    }
    try:
        try:
            chosen = Period(period)
        except ValueError:
            raise Refusal("period_unknown", f"{period!r} is not a period") from None
        plan = subscriptions.create_plan(
            visitor.database,
            owner_login=visitor.login,
            name=name.strip(),
            fee_micros=parse_amount(fee.strip() or "0", visitor.language),
            period=chosen,
            included_seconds=_minutes(included_minutes) * 60,
            prefixes=_prefixes(prefixes),
            rollover=rollover == "yes",
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return _list_page(visitor, error=refusal, typed=typed)
    return redirect(f"{plan_path(plan.name)}?saved=created")


@router.get("/plans/{name:path}")
def plan(visitor: AdminDep, name: str) -> Response:
    """A plan of the login's: its terms and the accounts that hold it (active or suspended)."""
    found, owner = subscriptions.get_plan(visitor.database, name=name, principal=visitor.principal)
    if owner.id != visitor.signed_in.node.id:
        raise NotFound("plan", name)  # a plan of another seller (one below it included): not here
    held = subscriptions.subscribers_of(
        visitor.database, name=name, limit=SUBSCRIBERS_LISTED_MAX, principal=visitor.principal
    )
    values: dict[str, Any] = {
        "plan": found,
        "subscribers": held,
        "period_words": PERIOD_WORDS,
        "status_words": STATUS_WORDS,
        "saved": SAVED.get(visitor.request.query_params.get("saved", "")),
    }
    return render(visitor, "plan.html", values=values)
