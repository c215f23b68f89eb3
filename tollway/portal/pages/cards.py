"""Calling cards: a seller's batches and cards, and the holder's own look at a card with its PIN.

- **Cards** (``/cards``, the provider's and resellers' admins and agents): the batches of the owner
  (``?owner=<login>``: the visitor's node, an agent's reseller by default; an agent sees the batches it
  made), newest first; the form that makes a batch (an agent's from one of its profiles, paid from its
  wallet: tollway/cards/service.py); the form that activates (sells), blocks, unblocks or closes one card,
  a range of serials or a whole batch.
- **A new batch's CSV** (its serials and PINs) is never on a page: the answer to the form holds a one-time
  token (``no-store``), and the CSV waits for one download by its maker (``POST /cards/download``), at most
  15 minutes, sealed with a key only that token opens (tollway/access/held_files.py); then it is deleted.
- **A batch** (``/cards/batches/<name>``): its cards by serial, 50 a page, each with its state and balance.
- **A card** (``/cards/<serial>``): state, balance, face value, activation, expiry; to admins the forms that
  block, unblock or close it and recharge it (with an idempotency key, as every form that moves money);
  its money's history, and its calls (``/calls?account=<the card's account>``).
- **The holder's page** (``/card``, public, on the seller's brand host): serial and PIN (or the PIN alone)
  show the card's balance, state, expiry and latest calls. Throttled as a switch's PIN attempts are
  (tollway/cards/holders.py); a wrong PIN and an unknown serial answer the same.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Response

from tollway.access.model import Action, Role
from tollway.agents import service as agents
from tollway.balances import statements
from tollway.cards import holders
from tollway.cards import service as cards
from tollway.cards.model import RECHARGEABLE, BatchTerms, CardState
from tollway.clock import utc_now
from tollway.config import Settings
from tollway.errors import NotFound, Refusal
from tollway.http.client import client_address
from tollway.http.errors import status_for
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.money import KINDS
from tollway.portal.pages.settings import parse_amount
from tollway.portal.web import STAFF_ROLES, StaffDep, Visitor, VisitorDep, redirect, render
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.sealing import Sealer

router = APIRouter()
NAVIGATION = (NavItem("/cards", N_("Calling cards"), STAFF_ROLES, order=25),)
PAGE_SIZE = 50
OFFERED_MAX = 200
STATES = {
    CardState.NEW: N_("New"),
    CardState.ACTIVE: N_("Active"),
    CardState.DEPLETED: N_("Depleted"),
    CardState.EXPIRED: N_("Expired"),
    CardState.BLOCKED: N_("Blocked"),
    CardState.CLOSED: N_("Closed"),
}
ACTIONS = {
    "activate": (cards.activate, N_("Activate (sell)")),
    "block": (cards.block, N_("Block")),
    "unblock": (cards.unblock, N_("Unblock")),
    "close": (cards.close, N_("Close for ever")),
}
CARD_ACTIONS = {  # what a card's page offers in each state
    CardState.NEW: ("activate", "block", "close"),
    CardState.ACTIVE: ("block", "close"),
    CardState.DEPLETED: ("block", "close"),
    CardState.EXPIRED: ("close",),
    CardState.BLOCKED: ("unblock", "close"),
    CardState.CLOSED: (),
}
SAVED = {
    "activate": N_("Cards activated: %(count)s."),
    "block": N_("Cards blocked: %(count)s."),
    "unblock": N_("Cards unblocked: %(count)s."),
    "close": N_("Cards closed: %(count)s."),
    "recharge": N_("The recharge is recorded."),
}
Login = Annotated[str, Query(max_length=63)]
Text = Annotated[str, Form(max_length=63)]
Short = Annotated[str, Form(max_length=40)]


def _sealer(visitor: Visitor) -> Sealer:
    """The installation's sealer: it keeps the key of the PINs' digests (as the API's)."""
    sealer = visitor.settings.sealer
    return sealer if isinstance(sealer, Sealer) else Sealer.from_settings(Settings())


def _owner_login(visitor: Visitor, owner: str) -> str:
    """Whose cards: the one asked for, else the visitor's node (an agent's: its reseller's)."""
    return owner or cards.cards_owner_of(visitor.database, visitor.principal)


def _number(text: str, reason: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise Refusal(reason, f"{text!r} is not a whole number")
    return int(text)


def _offers(visitor: Visitor, owner: str) -> dict[str, Any]:
    """What the batch form offers: an admin the owner's tariffs and plans, an agent its profiles."""
    database, principal = visitor.database, visitor.principal
    if visitor.role is Role.AGENT:
        _, profiles = agents.get_terms(database, agent_login=visitor.login, principal=principal)
        return {"tariffs": [], "plans": [], "profiles": profiles}
    tariffs = [t.name for t in rating.list_tariffs(database, owner_login=owner, limit=OFFERED_MAX, principal=principal)]
    plans = [
        p.name for _, p in subscriptions.list_plans(database, owner_login=owner, limit=OFFERED_MAX, principal=principal)
    ]
    return {"tariffs": tariffs, "plans": plans, "profiles": []}


def cards_page(
    visitor: Visitor,
    owner: str,
    *,
    before_id: int | None = None,
    error: Refusal | None = None,
    typed: dict[str, str] | None = None,
    saved: str | None = None,
) -> Response:
    batches = cards.list_batches(
        visitor.database, owner_login=owner, principal=visitor.principal, limit=PAGE_SIZE, before_id=before_id
    )
    return render(
        visitor,
        "cards.html",
        status_code=status_for(error) if error else 200,
        values={
            "owner": owner,
            "own": owner == _owner_login(visitor, ""),
            "batches": batches,
            "next_page": staff.query(owner=owner, before_id=batches[-1].id) if len(batches) == PAGE_SIZE else None,
            "first_page": before_id is None,
            "error": refusal_text(visitor, error) if error else None,
            "saved": saved,
            "typed": typed or {"pin_length": "12"},
            "actions": ACTIONS,
            "may_act": visitor.role is not Role.AGENT,
            "is_agent": visitor.role is Role.AGENT,
            **_offers(visitor, owner),
        },
    )


@router.get("/cards")
def batch_list(
    visitor: StaffDep,
    owner: Login = "",
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    saved: Annotated[str, Query(max_length=16)] = "",
    count: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    message = visitor.gettext(SAVED[saved], count=str(count)) if saved in SAVED else None
    return cards_page(visitor, _owner_login(visitor, owner), before_id=before_id, saved=message)


@router.post("/cards/batches")
def create_batch(
    visitor: StaffDep,
    owner: Text = "",
    name: Short = "",
    count: Short = "",
    face_value: Short = "",
    tariff: Annotated[str, Form(max_length=63)] = "",
    plan: Annotated[str, Form(max_length=128)] = "",
    profile: Text = "",
    expires: Short = "",
    expiry_days: Short = "",
    pin_length: Short = "12",
    serial_prefix: Short = "",
) -> Response:
    owner = _owner_login(visitor, owner)
    typed = {
        "name": name,
        "count": count,
        "face_value": face_value,
        "tariff": tariff,
        "plan": plan,
        "profile": profile,
        "expires": expires,
        "expiry_days": expiry_days,
        "pin_length": pin_length,
        "serial_prefix": serial_prefix,
    }
    sealer = _sealer(visitor)
    try:
        expiry_day = staff.day_of(expires.strip(), date.min) if expires.strip() else None
        terms = BatchTerms(
            name=name.strip(),
            count=_number(count, "batch_size_invalid") or 0,
            face_value_micros=parse_amount(face_value.strip(), visitor.language),
            tariff=tariff or None,
            plan=plan or None,
            profile=profile or None,
            expires_at=None if expiry_day is None else datetime.combine(expiry_day, time(), tzinfo=utc_now().tzinfo),
            expiry_days=_number(expiry_days, "expiry_invalid"),
            pin_length=_number(pin_length, "pin_length_invalid") or 12,
            serial_prefix=serial_prefix.strip().upper(),
        )
        made, token = cards.create_batch_for_download(
            visitor.database,
            owner_login=owner,
            terms=terms,
            pin_key=cards.installation_pin_key(visitor.database, sealer),
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return cards_page(visitor, owner, error=refusal, typed=typed)
    values = {"made": made, "token": token, "minutes": cards.DOWNLOAD_SECONDS // 60, "owner": owner}
    return render(visitor, "card_batch_made.html", values=values)


@router.post("/cards/download")
def download(visitor: StaffDep, token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """A new batch's CSV, once, to its maker; after that (or 15 minutes) it is gone."""
    content = cards.take_csv(visitor.database, token=token, principal=visitor.principal)
    if content is None:
        raise NotFound("card_batch_csv", "download")
    return Response(
        content,
        media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="cards.csv"', "cache-control": "no-store"},
    )


@router.post("/cards/actions")
def range_action(
    visitor: StaffDep,
    owner: Text = "",
    action: Annotated[str, Form(max_length=16)] = "",
    first: Short = "",
    last: Short = "",
    batch: Short = "",
) -> Response:
    owner = _owner_login(visitor, owner)
    typed = {"first": first, "last": last, "batch": batch, "action": action}
    try:
        if action not in ACTIONS:
            raise Refusal("request_invalid", f"{action!r} is not an action on cards")
        change, _ = ACTIONS[action]
        selection = cards.Selection(
            first=first.strip().upper() or None, last=last.strip().upper() or None, batch=batch.strip() or None
        )
        changed = change(visitor.database, owner_login=owner, selection=selection, principal=visitor.principal)
    except Refusal as refusal:
        if isinstance(refusal, NotFound) and refusal.reason == "node_not_found":
            raise
        return cards_page(visitor, owner, error=refusal, typed=typed)
    return redirect(f"/cards?{staff.query(owner=owner, saved=action)}&count={changed}")


@router.get("/cards/batches/{name}")
def batch_cards(
    visitor: StaffDep,
    name: str,
    owner: Login = "",
    after: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    owner = _owner_login(visitor, owner)
    batch, found = cards.list_cards(
        visitor.database,
        owner_login=owner,
        batch=name,
        principal=visitor.principal,
        after_number=after,
        limit=PAGE_SIZE,
    )
    return render(
        visitor,
        "card_batch.html",
        values={
            "owner": owner,
            "batch": batch,
            "cards": found,
            "states": STATES,
            "next_page": (
                staff.query(owner=owner, after=found[-1].card.serial_number) if len(found) == PAGE_SIZE else None
            ),
            "first_page": after == 0,
        },
    )


def card_page(
    visitor: Visitor, owner: str, serial: str, *, error: Refusal | None = None, saved: str | None = None
) -> Response:
    database, principal = visitor.database, visitor.principal
    view = cards.get_card(database, owner_login=owner, serial=serial, principal=principal)
    history = statements.money_movements(database, principal, login=view.card.login, limit=PAGE_SIZE)
    admin = visitor.role is not Role.AGENT
    return render(
        visitor,
        "card.html",
        status_code=status_for(error) if error else 200,
        values={
            "owner": owner,
            "view": view,
            "card": view.card,
            "states": STATES,
            "history": history,
            "kinds": KINDS,
            "key": staff.idempotency_key(),
            "error": refusal_text(visitor, error) if error else None,
            "saved": saved,
            "actions": {name: label for name, (_, label) in ACTIONS.items() if name in CARD_ACTIONS[view.card.state]},
            "may_act": admin and Action.NODE_UPDATE in principal.actions and bool(CARD_ACTIONS[view.card.state]),
            "may_recharge": admin and Action.MONEY_TOPUP in principal.actions and view.card.state in RECHARGEABLE,
            "sees_calls": admin,
        },
    )


@router.get("/cards/{serial}")
def card(
    visitor: StaffDep, serial: str, owner: Login = "", saved: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    message = visitor.gettext(SAVED[saved], count="1") if saved in SAVED else None
    return card_page(visitor, _owner_login(visitor, owner), serial, saved=message)


@router.post("/cards/{serial}/recharge")
def recharge(
    visitor: StaffDep,
    serial: str,
    owner: Text = "",
    amount: Short = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    owner = _owner_login(visitor, owner)
    try:
        cards.recharge(
            visitor.database,
            owner_login=owner,
            serial=serial,
            amount_micros=parse_amount(amount.strip(), visitor.language),
            transfer_id=key,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        if isinstance(refusal, NotFound):
            raise
        return card_page(visitor, owner, serial, error=refusal)
    return redirect(f"/cards/{serial}?{staff.query(owner=owner, saved='recharge')}")


# -- the holder's page ------------------------------------------------------------------------------------


def holder_page(
    visitor: Visitor, *, found: holders.HolderView | None = None, error: Refusal | None = None, serial: str = ""
) -> Response:
    return render(
        visitor,
        "card_holder.html",
        status_code=status_for(error) if error else 200,
        values={
            "found": found,
            "states": STATES,
            "serial": serial,
            "error": refusal_text(visitor, error) if error else None,
        },
    )


@router.get("/card")
def holder_form(visitor: VisitorDep) -> Response:
    return holder_page(visitor)


@router.post("/card")
def holder_card(visitor: VisitorDep, serial: Short = "", pin: Short = "") -> Response:
    """The card of a serial and PIN (or a PIN alone) sold under this host's brand; the PIN is never shown
    back, not even in the form."""
    try:
        found = holders.holder_card(
            visitor.database,
            pin_key=cards.installation_pin_key(visitor.database, _sealer(visitor)),
            pin=pin,
            serial=serial,
            address=client_address(visitor.request),
            brand_node_id=visitor.brand.node_id,
            now=utc_now(),
        )
    except Refusal as refusal:
        return holder_page(visitor, error=refusal, serial=serial)
    return holder_page(visitor, found=found)
