"""Calling cards: batches (their serials and PINs come back once, as CSV), a card, range actions, recharges."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tollway.cards import numbers
from tollway.cards import service as cards
from tollway.cards.model import (
    BATCH_CARDS_MAX,
    EXPIRY_DAYS_MAX,
    PIN_LENGTH_MAX,
    PIN_LENGTH_MIN,
    SERIAL_PREFIX_LENGTH_MAX,
    BatchTerms,
)
from tollway.config import Settings as AppSettings
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import PositiveAmount, Strict, TopupIn
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_decimal, to_micros
from tollway.sealing import Sealer

router = APIRouter(tags=["cards"], responses=ERRORS)  # type: ignore[arg-type]
Serial = Annotated[str, Field(min_length=9, max_length=30, pattern=r"^[A-Za-z0-9]*[0-9]{9}$")]


class CardBatchIn(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,40}$", description="the batch's name and idempotency key")]
    count: Annotated[int, Field(ge=1, le=BATCH_CARDS_MAX)]
    face_value: PositiveAmount
    tariff: Annotated[str | None, Field(min_length=1, max_length=63)] = None
    plan: Annotated[str | None, Field(min_length=1, max_length=128, description="given to each card at activation")] = (
        None
    )
    profile: Annotated[
        str | None, Field(min_length=1, max_length=63, description="a profile of type calling_card (an agent's batch)")
    ] = None
    expires: date | None = Field(default=None, description="every card's expiry date")
    expiry_days: Annotated[int | None, Field(ge=1, le=EXPIRY_DAYS_MAX, description="or days after first use")] = None
    pin_length: Annotated[int, Field(ge=PIN_LENGTH_MIN, le=PIN_LENGTH_MAX)] = 12
    serial_prefix: Annotated[str, Field(pattern=rf"^[A-Za-z0-9]{{0,{SERIAL_PREFIX_LENGTH_MAX}}}$")] = ""


class SelectionIn(Strict):
    first: Serial | None = Field(default=None, description="a serial; alone, that one card")
    last: Serial | None = Field(default=None, description="the last serial of a range")
    batch: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._:-]{1,40}$")] = None


class CardsChanged(BaseModel):
    cards: int


class CardOut(BaseModel):
    serial: str
    batch: str
    account: str = Field(description="the card's client account (its calls and balance)")
    state: str
    currency: str
    face_value: Decimal
    balance: Decimal
    activated_at: datetime | None
    expires_at: datetime | None
    already_recorded: bool | None = Field(default=None, description="in a recharge's answer: a repeat")


def pin_key_of(request: Request) -> bytes:
    """The installation's PIN digest key, made once per application from its settings."""
    key: bytes | None = getattr(request.app.state, "card_pin_key", None)
    if key is None:
        sealer = getattr(request.app.state, "sealer", None)
        if not isinstance(sealer, Sealer):
            sealer = Sealer.from_settings(AppSettings())
        key = cards.installation_pin_key(request.app.state.database, sealer)
        request.app.state.card_pin_key = key
    return key


def card_out(view: cards.CardView, already_recorded: bool | None = None) -> CardOut:
    card = view.card
    return CardOut(
        serial=card.serial,
        batch=card.batch,
        account=card.login,
        state=str(card.state),
        currency=card.currency,
        face_value=to_decimal(card.face_value_micros),
        balance=to_decimal(view.balance_micros),
        activated_at=card.activated_at,
        expires_at=card.expires_at,
        already_recorded=already_recorded,
    )


@router.post(
    "/nodes/{login}/card-batches",
    status_code=201,
    summary="Make a batch of calling cards; their serials and PINs come back once, as CSV",
    response_class=Response,
    responses={201: {"content": {"text/csv": {}}}},
)
def create_card_batch(
    login: str, body: CardBatchIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> Response:
    expires_at = None if body.expires is None else datetime.combine(body.expires, time(), tzinfo=UTC)
    terms = BatchTerms(
        name=body.id,
        count=body.count,
        face_value_micros=to_micros(body.face_value),
        tariff=body.tariff,
        plan=body.plan,
        profile=body.profile,
        expires_at=expires_at,
        expiry_days=body.expiry_days,
        pin_length=body.pin_length,
        serial_prefix=body.serial_prefix,
    )
    made = cards.create_batch(
        database, owner_login=login, terms=terms, pin_key=pin_key_of(request), principal=principal
    )
    return Response(
        cards.to_csv(made),
        status_code=201,
        media_type="text/csv",
        headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{made.batch}.csv"'},
    )


@router.get("/nodes/{login}/cards/{serial}", summary="A calling card of the node: state, balance, expiry")
def get_card(login: str, serial: str, database: DatabaseDep, principal: PrincipalDep) -> CardOut:
    return card_out(cards.get_card(database, owner_login=login, serial=serial, principal=principal))


ACTIONS = {"activate": cards.activate, "block": cards.block, "unblock": cards.unblock, "close": cards.close}


@router.post(
    "/nodes/{login}/card-ranges/{action}",
    summary="Activate (sell), block, unblock or close one card, a range of serials or a batch",
)
def change_cards(
    login: str,
    action: Literal["activate", "block", "unblock", "close"],
    body: SelectionIn,
    database: DatabaseDep,
    principal: PrincipalDep,
) -> CardsChanged:
    selection = cards.Selection(first=body.first, last=body.last, batch=body.batch)
    return CardsChanged(cards=ACTIONS[action](database, owner_login=login, selection=selection, principal=principal))


@router.post("/nodes/{login}/cards/{serial}/recharges", summary="Top up an active or depleted calling card")
def recharge_card(login: str, serial: str, body: TopupIn, database: DatabaseDep, principal: PrincipalDep) -> CardOut:
    applied = cards.recharge(
        database,
        owner_login=login,
        serial=serial,
        amount_micros=to_micros(body.amount),
        transfer_id=body.id,
        principal=principal,
    )
    view = cards.get_card(database, owner_login=login, serial=serial, principal=principal)
    return card_out(view, applied.already_existed)


class AccessNumberIn(Strict):
    language: Annotated[str, Field(min_length=2, max_length=8, examples=["es"])]
    exclusive: bool = Field(description="only the cards of the owner's subtree may use it")


class AccessNumberOut(BaseModel):
    number: str
    language: str
    exclusive: bool


@router.put("/nodes/{login}/access-numbers/{number}", summary="Create or change an access number of the node")
def put_access_number(
    login: str, number: str, body: AccessNumberIn, database: DatabaseDep, principal: PrincipalDep
) -> AccessNumberOut:
    made = numbers.put_access_number(
        database,
        owner_login=login,
        number=number,
        language=body.language,
        exclusive=body.exclusive,
        principal=principal,
    )
    return AccessNumberOut(number=made.number, language=made.language, exclusive=made.exclusive)


@router.get("/nodes/{login}/access-numbers", summary="The node's access numbers")
def list_access_numbers(login: str, database: DatabaseDep, principal: PrincipalDep) -> list[AccessNumberOut]:
    found = numbers.list_access_numbers(database, owner_login=login, principal=principal)
    return [AccessNumberOut(number=n.number, language=n.language, exclusive=n.exclusive) for n in found]


class CallersOut(BaseModel):
    serial: str
    callers: list[str] = Field(description="caller numbers (ANI) that use the card without its PIN")


@router.put("/nodes/{login}/cards/{serial}/callers/{number}", summary="Let a caller number use the card without PIN")
def add_card_caller(login: str, serial: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> CallersOut:
    held = cards.add_caller(database, owner_login=login, serial=serial, number=number, principal=principal)
    return CallersOut(serial=serial, callers=held)


@router.delete("/nodes/{login}/cards/{serial}/callers/{number}", summary="A caller number needs the PIN again")
def remove_card_caller(
    login: str, serial: str, number: str, database: DatabaseDep, principal: PrincipalDep
) -> CallersOut:
    held = cards.remove_caller(database, owner_login=login, serial=serial, number=number, principal=principal)
    return CallersOut(serial=serial, callers=held)
