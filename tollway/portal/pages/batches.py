"""Client accounts made in a batch from a customer profile, their passwords downloaded once.

A reseller's admin (or the provider's) makes them below its node, or below a reseller under it
(``?owner=``), from that owner's profiles, optionally for one of its agents; an agent makes them for its
reseller from the profiles its terms allow, and pays their fees. The form is shown first, then what the
batch costs (what leaves the paying agent's wallet, or the owner's top-ups), then "Create". The answer says
the accounts are made and offers their CSV (logins and passwords) for one download, held by
``agents.downloads``; a second download answers 410 with a page that says why. The batch's id is the
form's idempotency key: sent twice, the second is refused (``batch_exists``), never a second batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Response

from tollway.access.model import Role
from tollway.agents import downloads
from tollway.agents import service as agents
from tollway.agents.model import AGENT_BATCH_MIN, BATCH_ACCOUNTS_MAX, batch_cost_micros, check_batch_size
from tollway.balances import service as balances
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.web import STAFF_ROLES, StaffDep, Visitor, render
from tollway.tree import service as tree
from tollway.tree.model import NodeKind

router = APIRouter()
NAVIGATION = (NavItem("/batches", N_("New accounts in a batch"), STAFF_ROLES, order=25),)
AGENTS_OFFERED_MAX = 200
COUNT_LENGTH_MAX = 12  # digits typed in the count field; more is refused as too many
Login = Annotated[str, Form(max_length=63)]
# What these refusals mean for accounts (the same reasons say other things about calling cards).
REFUSALS = {
    "batch_size_invalid": N_("A batch has 1 to 10,000 accounts; an agent creates at least 10 at a time."),
    "batch_exists": N_("This batch was created already; its file was offered then. Start a new batch."),
    "profile_required": N_("Choose a profile."),
    "profile_not_allowed": N_("You may not create accounts from this profile."),
}


@dataclass(frozen=True, slots=True)
class BatchForm:
    """What the form holds, as typed and as read."""

    owner: str
    profile: str
    count_text: str
    initial_balance_text: str
    agent: str
    key: str

    def typed(self) -> dict[str, str]:
        return {
            "owner": self.owner,
            "profile": self.profile,
            "count": self.count_text,
            "initial_balance": self.initial_balance_text,
            "agent": self.agent,
        }


def parse_count(text: str, *, by_agent: bool) -> int:
    """A count typed in the form: a whole number within the batch's limits, or a refusal the form shows."""
    cleaned = text.strip()
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > COUNT_LENGTH_MAX:
        raise Refusal("count_invalid", f"{text!r} is not a number of accounts")
    return check_batch_size(int(cleaned), by_agent=by_agent)


def _is_agent(visitor: Visitor) -> bool:
    return visitor.role is Role.AGENT


def _form_values(visitor: Visitor, owner_login: str) -> dict[str, Any]:
    """The profiles and agents the form offers: an agent's allowed profiles, or the owner's own."""
    database, principal = visitor.database, visitor.principal
    if _is_agent(visitor):
        _, names = agents.get_terms(database, agent_login=visitor.login, principal=principal)
        return {"owner": None, "profiles": [], "profile_names": names, "agents": []}
    owner = tree.get_node(database, principal, login=owner_login)
    profiles = agents.list_profiles(database, owner_login=owner.login, principal=principal)
    owners_agents = [
        agent
        for agent in tree.visible_nodes(
            database, principal, kind=NodeKind.AGENT, within_login=owner.login, limit=AGENTS_OFFERED_MAX
        )
        if agent.parent_id == owner.id
    ]
    return {"owner": owner, "profiles": profiles, "profile_names": [p.name for p in profiles], "agents": owners_agents}


def _refusal_text(visitor: Visitor, refusal: Refusal) -> str:
    own = REFUSALS.get(refusal.reason)
    return visitor.gettext(own) if own is not None else refusal_text(visitor, refusal)


def batch_page(
    visitor: Visitor,
    owner_login: str,
    *,
    error: Refusal | None = None,
    typed: dict[str, str] | None = None,
    preview: dict[str, Any] | None = None,
) -> Response:
    values = _form_values(visitor, owner_login) | {
        "error": _refusal_text(visitor, error) if error else None,
        "typed": typed or {},
        "preview": preview,
        "key": staff.idempotency_key(),
        "is_agent": _is_agent(visitor),
        "count_min": AGENT_BATCH_MIN if _is_agent(visitor) else 1,
        "count_max": BATCH_ACCOUNTS_MAX,
        "client_types": staff.CLIENT_TYPES,
    }
    return render(visitor, "batches.html", status_code=status_for(error) if error else 200, values=values)


@router.get("/batches")
def batch_form(visitor: StaffDep, owner: Annotated[str, Query(max_length=63)] = "") -> Response:
    return batch_page(visitor, owner or visitor.login)


def _preview(visitor: Visitor, form: BatchForm, count: int, initial_balance_micros: int) -> dict[str, Any]:
    """What the batch will cost, before it is made: the paying agent's fees and wallet, or the owner's top-ups."""
    database, principal = visitor.database, visitor.principal
    payer = visitor.login if _is_agent(visitor) else form.agent or None
    preview: dict[str, Any] = {
        "count": count,
        "initial_balance_micros": initial_balance_micros,
        "balances_micros": count * initial_balance_micros,
        "payer": payer,
        "key": form.key,
    }
    if payer is None:
        return preview
    terms, _ = agents.get_terms(database, agent_login=payer, principal=principal)
    wallet = balances.get_balance(database, login=payer, principal=principal)
    return preview | {
        "account_fee_micros": terms.account_fee_micros,
        "deposit_fee_micros": terms.topup_fee_micros if initial_balance_micros else 0,
        "cost_micros": batch_cost_micros(count, initial_balance_micros, terms),
        "available_micros": wallet.available_micros,
        "currency": wallet.currency,
    }


@router.post("/batches")
def create_batch(
    visitor: StaffDep,
    owner: Login = "",
    profile: Annotated[str, Form(max_length=63)] = "",
    count: Annotated[str, Form(max_length=40)] = "",
    initial_balance: Annotated[str, Form(max_length=40)] = "",
    agent: Login = "",
    key: Annotated[str, Form(max_length=100)] = "",
    confirmed: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """First what the batch costs, then, confirmed, the batch and its file held for one download."""
    owner_login = visitor.login if _is_agent(visitor) else owner or visitor.login
    form = BatchForm(owner_login, profile, count, initial_balance, "" if _is_agent(visitor) else agent, key)
    try:
        amount = parse_amount(initial_balance.strip() or "0", visitor.language)
        if amount < 0:
            raise Refusal("amount_invalid", "an initial balance is zero or more")
        accounts = parse_count(count, by_agent=_is_agent(visitor))
        if not profile:
            raise Refusal("profile_required", "choose a profile")
        if confirmed != "yes":
            preview = _preview(visitor, form, accounts, amount)
            return batch_page(visitor, owner_login, typed=form.typed(), preview=preview)
        held = downloads.create_batch_for_download(
            visitor.database,
            owner_login=None if _is_agent(visitor) else owner_login,
            profile_name=profile,
            count=accounts,
            batch_id=key,
            initial_balance_micros=amount,
            agent_login=form.agent or None,
            principal=visitor.principal,
        )
    except NotFound:
        raise
    except Refusal as refusal:
        return batch_page(visitor, owner_login, error=refusal, typed=form.typed())
    return render(visitor, "batch_made.html", values={"held": held, "hold_minutes": downloads.HOLD_SECONDS // 60})


@router.post("/batches/file")
def download(visitor: StaffDep, token: Annotated[str, Form(max_length=downloads.TOKEN_LENGTH_MAX)] = "") -> Response:
    """The batch's CSV, once; asked again (or too late, or by another login), a page that says it is gone."""
    try:
        found = downloads.take_batch_file(visitor.database, token=token, principal=visitor.principal)
    except NotFound:
        return render(visitor, "batch_gone.html", status_code=410)
    return Response(
        found.content,
        media_type="text/csv; charset=utf-8",
        headers={"cache-control": "no-store", "content-disposition": f'attachment; filename="{found.filename}"'},
    )
