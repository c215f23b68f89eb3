"""The accounts below a staff login: sub-resellers, agents and clients.

A reseller's admin sees its whole subtree, the provider's the whole tree, an agent the clients it manages
(in its limited view: no call details, no secrets, no limits). The list searches logins and names and
pages by ascending id; an account's page shows its balance and, to its owners, its status, tariff, plans
and credit limit with the forms that change them. Every change goes through the service the API calls,
with the visitor's principal: what it may not see answers 404, what it may not do 403.

Forms that move money carry an idempotency key (``staff.idempotency_key``) drawn when the form is shown:
the same form sent twice (a double click, a reload) moves the money once. An agent's deposit is shown with
its fee before it is confirmed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Response

from tollway.access.model import Action, Role, limited_view, place_of
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.lines import service as lines
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.line_forms import LINE_SAVED, line_values
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.web import STAFF_ROLES, StaffDep, Visitor, redirect, render
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Node, NodeKind, Position, Status

router = APIRouter()
NAVIGATION = (NavItem("/accounts", N_("Accounts"), STAFF_ROLES, order=20),)
PAGE_SIZE = 50
OFFERED_MAX = 200  # tariffs and plans offered in a form's list
LISTED_KINDS = (NodeKind.RESELLER, NodeKind.AGENT, NodeKind.CLIENT)
LINELESS = (ClientType.PBX, ClientType.USER)  # their numbers are on the organization's pages
SAVED = {
    "created": N_("The account is created."),
    "status": N_("The account's status is changed."),
    "topup": N_("The top-up is recorded."),
    "deposit": N_("The deposit is made."),
    "credit_limit": N_("The credit limit is set."),
    "tariff": N_("The tariff is assigned."),
    "plan": N_("The plan is given, and its first fee charged."),
}
Login = Annotated[str, Query(max_length=63)]
AmountField = Annotated[str, Form(max_length=40)]
KeyField = Annotated[str, Form(max_length=100)]


def _kind(text: str) -> NodeKind | None:
    if not text:
        return None
    if text not in {str(kind) for kind in LISTED_KINDS}:
        raise Refusal("request_invalid", f"{text!r} is not a kind of account listed here")
    return NodeKind(text)


@router.get("/accounts")
def account_list(
    visitor: StaffDep,
    kind: Annotated[str, Query(max_length=16)] = "",
    q: Annotated[str, Query(max_length=tree.SEARCH_LENGTH_MAX)] = "",
    within: Login = "",
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    found = tree.visible_nodes(
        visitor.database,
        visitor.principal,
        kind=_kind(kind),
        search=q.strip(),
        within_login=within or None,
        limit=PAGE_SIZE,
        after_id=after_id,
        below_only=True,
    )
    next_after_id = found[-1].id if len(found) == PAGE_SIZE else None
    filters = {"kind": kind, "q": q.strip(), "within": within}
    return render(
        visitor,
        "accounts.html",
        values={
            "accounts": found,
            "filters": filters,
            "paging": staff.paging(
                filters, first_page=after_id == 0, next_start=("after_id", next_after_id) if next_after_id else None
            ),
            "kinds": staff.KINDS,
            "listed_kinds": LISTED_KINDS if visitor.role is not Role.AGENT else (),
            "statuses": staff.STATUSES,
            "position_words": staff.position_words,
            "may_create": visitor.role is not Role.AGENT,
        },
    )


def _owner_offers(visitor: Visitor, node: Node, owner: Node | None) -> dict[str, Any]:
    """The owner's tariffs and plans this node may be given (when the visitor may give them)."""
    if owner is None or Action.NODE_UPDATE not in visitor.principal.actions:
        return {"tariffs_offered": [], "plans_offered": []}
    database, principal = visitor.database, visitor.principal
    tariffs = [
        tariff
        for tariff in rating.list_tariffs(database, owner_login=owner.login, limit=OFFERED_MAX, principal=principal)
        if tariff.currency == node.currency
    ]
    plans = []
    if node.position.kind is NodeKind.CLIENT:
        plans = [
            plan
            for _, plan in subscriptions.list_plans(
                database, owner_login=owner.login, limit=OFFERED_MAX, principal=principal
            )
            if plan.currency == node.currency
        ]
    return {"tariffs_offered": tariffs, "plans_offered": plans}


def _full_view(visitor: Visitor, node: Node) -> dict[str, Any]:
    """What an owner sees of an account beyond its balance: its owner, tariff, plans, agent's terms."""
    database, principal = visitor.database, visitor.principal
    owner = tree.get_owner(database, principal, login=node.login)
    sells = node.position.kind in (NodeKind.RESELLER, NodeKind.CLIENT)
    values: dict[str, Any] = {
        "owner": owner,
        "tariff": rating.tariff_of(database, login=node.login, principal=principal) if sells else None,
        "plans": None,
        "terms": None,
        **_owner_offers(visitor, node, owner),
    }
    if node.position.kind is NodeKind.CLIENT:
        values["plans"] = subscriptions.subscriptions_of(database, login=node.login, principal=principal)
    if node.position.kind is NodeKind.AGENT:
        values["terms"] = agents.get_terms(database, agent_login=node.login, principal=principal)
    return values


def _line_view(visitor: Visitor, node: Node, *, below: bool) -> dict[str, Any]:
    """A client's caller ids, for its owners to verify (an organization's are on its own page)."""
    if not below or node.position.kind is not NodeKind.CLIENT or node.position.client_type in LINELESS:
        return {"line": None}
    line = lines.get_line(visitor.database, login=node.login, principal=visitor.principal)
    return line_values(visitor, line, f"/accounts/{node.login}") | {"may_verify": True}


def account_page(
    visitor: Visitor,
    login: str,
    *,
    error: Refusal | None = None,
    deposit: dict[str, Any] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """An account's page; after a refused form, with its error and what was typed."""
    database, principal = visitor.database, visitor.principal
    node = tree.get_node(database, principal, login=login)
    limited = limited_view(principal, place_of(node))
    below = node.id != principal.place.node_id
    saved = visitor.request.query_params.get("saved", "")
    values: dict[str, Any] = {
        "node": node,
        "limited": limited,
        "below": below,
        "balance": balances.get_balance(database, login=login, principal=principal),
        "saved": SAVED.get(saved) or LINE_SAVED.get(saved),
        "error": refusal_text(visitor, error) if error else None,
        "deposit": deposit,
        "typed": typed or {},
        "key": staff.idempotency_key(),
        "statuses": staff.STATUSES,
        "next_statuses": [s for s in Status if s is not node.status],
        "position_words": staff.position_words,
        "is_agent": visitor.role is Role.AGENT,
        "may_update": below and not limited and Action.NODE_UPDATE in principal.actions,
        "may_adjust": below and not limited and Action.MONEY_ADJUST in principal.actions,
        "may_topup": below and Action.MONEY_TOPUP in principal.actions,
        "owner": None,
        "tariff": None,
        "plans": None,
        "terms": None,
        "tariffs_offered": [],
        "plans_offered": [],
        "line": None,
    }
    if not limited:
        values |= _full_view(visitor, node)
        values |= _line_view(visitor, node, below=below)
    status_code = status_for(error) if error else 200
    return render(visitor, "account.html", status_code=status_code, values=values)


def positions_offered(owner: Node) -> list[Position]:
    """What ``owner`` may own, as a creation form offers it: a reseller's client types as it may sell them."""
    candidates = [tree_model.reseller(level) for level in (3, 2, 1)] + [tree_model.AGENT]
    candidates += [tree_model.client(client_type) for client_type in tree_model.ALL_CLIENT_TYPES]
    offered = [position for position in candidates if tree_model.may_own(owner.position, position)]
    if owner.position.kind is NodeKind.RESELLER:
        offered = [
            position
            for position in offered
            if position.client_type is None or position.client_type in owner.grants.client_types
        ]
    return sorted(offered, key=staff.position_key)


def _creation_page(
    visitor: Visitor, owner_login: str, *, error: Refusal | None = None, typed: dict[str, str] | None = None
) -> Response:
    database, principal = visitor.database, visitor.principal
    owner = tree.get_node(database, principal, login=owner_login)
    agents_of_owner = [
        agent
        for agent in tree.visible_nodes(
            database, principal, kind=NodeKind.AGENT, within_login=owner.login, limit=OFFERED_MAX
        )
        if agent.parent_id == owner.id
    ]
    return render(
        visitor,
        "account_new.html",
        status_code=status_for(error) if error else 200,
        values={
            "owner": owner,
            "positions": [(staff.position_key(p), *staff.position_words(p)) for p in positions_offered(owner)],
            "agents": agents_of_owner,
            "error": refusal_text(visitor, error) if error else None,
            "typed": typed or {},
        },
    )


@router.get("/accounts/new")
def new_account(visitor: StaffDep, owner: Login = "") -> Response:
    """The form that creates an account below ``owner`` (the visitor's own node by default)."""
    if visitor.role is Role.AGENT:  # an agent's accounts come from its reseller's profiles: /batches
        raise NotFound("page", "/accounts/new")
    return _creation_page(visitor, owner or visitor.login)


@router.post("/accounts/new")
def create_account(
    visitor: StaffDep,
    owner: Annotated[str, Form(max_length=63)] = "",
    position: Annotated[str, Form(max_length=32)] = "",
    login: Annotated[str, Form(max_length=63)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    credit_limit: AmountField = "",
    language: Annotated[str, Form(max_length=8)] = "",
    agent: Annotated[str, Form(max_length=63)] = "",
) -> Response:
    if visitor.role is Role.AGENT:
        raise NotFound("page", "/accounts/new")
    typed = {"position": position, "login": login, "name": name, "credit_limit": credit_limit, "agent": agent}
    try:
        new = tree.NewNode(
            position=staff.position_of_key(position),
            login=login.strip(),
            name=name.strip(),
            language=language or None,
            credit_limit_micros=parse_amount(credit_limit.strip() or "0", visitor.language),
            managed_by_agent_login=agent or None,
        )
        node = agents.create_node(
            visitor.database, owner_login=owner or visitor.login, new=new, principal=visitor.principal
        )
    except Refusal as refusal:
        return _creation_page(visitor, owner or visitor.login, error=refusal, typed=typed | {"language": language})
    return redirect(f"/accounts/{node.login}?saved=created")


@router.get("/accounts/{login}")
def account(visitor: StaffDep, login: str) -> Response:
    return account_page(visitor, login)


@router.post("/accounts/{login}/status")
def set_status(visitor: StaffDep, login: str, status: Annotated[str, Form(max_length=16)] = "") -> Response:
    try:
        chosen = Status(status)
    except ValueError:
        return account_page(visitor, login, error=Refusal("status_invalid", status))
    try:
        tree.set_status(visitor.database, login=login, status=chosen, principal=visitor.principal)
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal)
    return redirect(f"/accounts/{login}?saved=status")


@router.post("/accounts/{login}/topup")
def topup(
    visitor: StaffDep,
    login: str,
    amount: AmountField = "",
    key: KeyField = "",
    reference: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """An owner's top-up from its issuance account (an agent's is a deposit: ``/deposit``)."""
    try:
        balances.topup(
            visitor.database,
            login=login,
            amount_micros=parse_amount(amount.strip(), visitor.language),
            transfer_id=key,
            reference=reference.strip() or None,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal, typed={"amount": amount, "reference": reference})
    return redirect(f"/accounts/{login}?saved=topup")


@router.post("/accounts/{login}/deposit")
def deposit(
    visitor: StaffDep,
    login: str,
    amount: AmountField = "",
    key: KeyField = "",
    confirmed: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """An agent's deposit: first shown with its fee and total, then made when confirmed."""
    if visitor.role is not Role.AGENT:
        return account_page(visitor, login, error=Refusal("forbidden", "only an agent deposits"))
    try:
        amount_micros = parse_amount(amount.strip(), visitor.language)
        if amount_micros <= 0:
            raise Refusal("amount_invalid", "a deposit is a positive amount")
        if confirmed != "yes":
            terms, _ = agents.get_terms(visitor.database, agent_login=visitor.login, principal=visitor.principal)
            preview = {
                "amount_micros": amount_micros,
                "fee_micros": terms.topup_fee_micros,
                "total_micros": amount_micros + terms.topup_fee_micros,
                "amount": amount.strip(),
            }
            return account_page(visitor, login, deposit=preview)
        agents.deposit(
            visitor.database,
            client_login=login,
            amount_micros=amount_micros,
            transfer_id=key,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal, typed={"amount": amount})
    return redirect(f"/accounts/{login}?saved=deposit")


@router.post("/accounts/{login}/credit-limit")
def set_credit_limit(visitor: StaffDep, login: str, credit_limit: AmountField = "") -> Response:
    try:
        balances.set_credit_limit(
            visitor.database,
            login=login,
            credit_limit_micros=parse_amount(credit_limit.strip() or "0", visitor.language),
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal, typed={"credit_limit": credit_limit})
    return redirect(f"/accounts/{login}?saved=credit_limit")


@router.post("/accounts/{login}/tariff")
def assign_tariff(visitor: StaffDep, login: str, tariff: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        rating.assign_tariff(visitor.database, login=login, tariff=tariff, principal=visitor.principal)
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal)
    return redirect(f"/accounts/{login}?saved=tariff")


@router.post("/accounts/{login}/plan")
def give_plan(visitor: StaffDep, login: str, plan: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        subscriptions.subscribe(visitor.database, login=login, plan_name=plan, principal=visitor.principal)
    except Refusal as refusal:
        return account_page(visitor, login, error=refusal)
    return redirect(f"/accounts/{login}?saved=plan")
