"""What the API reads and writes. Amounts travel as decimal strings, never as JSON numbers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from tollway.access.model import Action, Role
from tollway.errors import NUL, NUL_MESSAGE, NUL_REASON
from tollway.store.types import ID_MAX
from tollway.tree.model import ClientType, Feature, Node, NodeKind, Status

AMOUNT_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
Amount = Annotated[str, Field(pattern=AMOUNT_PATTERN, examples=["12.50"], description="decimal, 6 places at most")]
PositiveAmount = Annotated[
    str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,6})?$", examples=["12.50"], description="decimal, 6 places at most")
]
Login = Annotated[str, Field(min_length=2, max_length=63, examples=["north-city"])]
TransferId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,100}$", examples=["pay-2026-0001"])]
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 500
PageSize = Annotated[int, Field(ge=1, le=PAGE_SIZE_MAX)]
AfterId = Annotated[int, Field(ge=0, le=ID_MAX, description="the last id of the previous page; 0: from the start")]
BeforeId = Annotated[int, Field(ge=1, le=ID_MAX, description="the last id of the previous page")]


FEATURES_SOLD = (
    "What a reseller may sell, within its owner's, each enforced: tariffs, plans, agents, online_shop, "
    "branded_portal, calling_cards."
)


def contains_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (a JSON value: lists and objects walked without recursion,
    however deep) holds a NUL character, which PostgreSQL cannot store in text."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False


class Strict(BaseModel):
    """What the API reads: unknown fields are refused, and so is a NUL in any text of any field (the one
    place every request body is checked for it; query and path parameters: ``refuse_nul_parameters``)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _text_without_nul(cls, value: Any) -> Any:
        if contains_nul(value):
            raise PydanticCustomError(NUL_REASON, NUL_MESSAGE)
        return value


class Reply(BaseModel):
    """What the API answers, where an unknown field is a bug to catch: strict about fields, not about text."""

    model_config = ConfigDict(extra="forbid")


def json_reply(reply: Reply) -> Response:
    """``reply`` as the JSON answer FastAPI makes of a route's response model (the same bytes and headers),
    for a route that declares that model (``response_model``, so its documentation holds) and has already
    validated its reply: returned as it is, a ``Response`` skips FastAPI's second validation of the model,
    which a sync route runs in the thread pool, one more trip there per request."""
    return Response(content=reply.model_dump_json(by_alias=True), media_type="application/json")


class Problem(BaseModel):
    reason: str
    message: str


class NodeOut(BaseModel):
    id: int
    login: str
    name: str
    kind: NodeKind
    level: int | None
    client_type: ClientType | None
    owner_id: int | None
    currency: str
    status: Status
    language: str
    time_zone: str
    client_types: list[ClientType] | None = None
    features: Annotated[list[Feature] | None, Field(description=FEATURES_SOLD)] = None
    clients_limit: int | None = None
    concurrent_calls_limit: int | None = None
    max_call_seconds: int | None = None
    managed_by_agent_id: int | None = None
    email: str | None = None
    phone: str | None = None
    limited_view: bool = False

    @classmethod
    def of(cls, node: Node, *, limited: bool = False) -> NodeOut:
        full: dict[str, Any] = {}
        if not limited:
            full = {
                "client_types": sorted(node.grants.client_types) if node.position.kind is NodeKind.RESELLER else None,
                "features": sorted(node.grants.features) if node.position.kind is NodeKind.RESELLER else None,
                "clients_limit": node.clients_limit,
                "concurrent_calls_limit": node.concurrent_calls_limit,
                "max_call_seconds": node.max_call_seconds,
                "managed_by_agent_id": node.managed_by_agent_id,
            }
        return cls(
            id=node.id,
            login=node.login,
            name=node.name,
            kind=node.position.kind,
            level=node.position.level,
            client_type=node.position.client_type,
            owner_id=node.parent_id,
            currency=node.currency,
            status=node.status,
            language=node.language,
            time_zone=node.time_zone,
            email=node.email,
            phone=node.phone,
            limited_view=limited,
            **full,
        )


class NodePage(BaseModel):
    items: list[NodeOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; null at the end")


class NodeIn(Strict):
    owner: Login
    login: Login
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: NodeKind
    level: Annotated[int | None, Field(ge=1, le=3)] = None
    client_type: ClientType | None = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None
    language: Annotated[str | None, Field(max_length=8)] = None
    time_zone: Annotated[str | None, Field(max_length=64)] = None
    credit_limit: PositiveAmount = "0"
    client_types: list[ClientType] | None = None
    features: Annotated[list[Feature] | None, Field(description=FEATURES_SOLD)] = None
    clients_limit: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    concurrent_calls_limit: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    managed_by_agent: Login | None = None


class NodeStatusIn(Strict):
    status: Status


class NodeLimitsIn(Strict):
    clients_limit: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    concurrent_calls_limit: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    max_call_seconds: Annotated[int | None, Field(ge=1, le=14_400, description="the longest call; none: 4 h")] = None


class NodeGrantsIn(Strict):
    client_types: list[ClientType]
    features: Annotated[list[Feature], Field(description=FEATURES_SOLD)]


class BalanceOut(BaseModel):
    login: str
    currency: str
    balance: Decimal
    credit_limit: Decimal
    reserved: Decimal
    available: Decimal | None = Field(description="null when unlimited (the provider)")


class TopupIn(Strict):
    id: TransferId = Field(description="idempotency key: a retry with the same id changes nothing")
    amount: PositiveAmount
    reference: Annotated[str | None, Field(max_length=200)] = None


class AdjustmentIn(Strict):
    id: TransferId
    amount: Amount = Field(description="signed: negative debits the wallet")
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class CreditLimitIn(Strict):
    credit_limit: PositiveAmount


class TransferOut(BaseModel):
    id: str
    amount: Decimal
    currency: str
    kind: str
    phase: str
    reference: str | None
    created_at: datetime


class WalletTransferOut(TransferOut):
    status: Literal["posted", "reserved", "released"] = Field(
        description="posted: it moved the balance; reserved: a call's reservation still held; released: a "
        "reservation given back when its call ended (the call's cost is its own posted transfer)"
    )
    effect: Decimal = Field(description="what it did to this wallet's balance, signed; 0 for reservations")


class MarginOut(BaseModel):
    login: str
    currency: str
    since: datetime
    until: datetime
    calls_sold: int = Field(description="calls of the level below that paid this seller in the period")
    revenue: Decimal = Field(description="what they paid it, in its currency")
    calls_bought: int = Field(description="calls it paid the level above for")
    cost: Decimal = Field(description="what it paid for them, in its currency")
    margin: Decimal = Field(description="revenue - cost")
    revenue_other_currencies: dict[str, Decimal] = Field(
        description="revenue its customers paid in other currencies, by currency: not in the margin"
    )


class MoneyResult(BaseModel):
    already_recorded: bool = Field(description="true when this id was recorded before: nothing changed now")
    transfers: list[TransferOut]
    balance: BalanceOut


class UserIn(Strict):
    login: Login
    password: Annotated[str, Field(min_length=10, max_length=256)]
    role: Role


class UserOut(BaseModel):
    id: int
    login: str
    role: Role
    node_id: int


class ApiKeyIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    actions: list[Action] | None = Field(default=None, description="a subset of the role's; all of them if absent")


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    role: Role
    actions: list[Action]
    revoked: bool = False
    api_key: str | None = Field(default=None, description="the key itself: shown this once, never again")


class LoginsOut(BaseModel):
    users: list[UserOut]
    api_keys: list[ApiKeyOut] = Field(description="without their secrets, which are never shown again")


class SessionIn(Strict):
    login: Login
    password: Annotated[str, Field(min_length=1, max_length=256)]
    code: Annotated[str | None, Field(max_length=20, description="the authenticator's code, if two-step is on")] = None


class SessionOut(BaseModel):
    csrf_token: str = Field(description="send as X-CSRF-Token with every change made with this session")
    expires_at: datetime
    role: Role
    node_id: int


class ExchangeRateIn(Strict):
    base_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    quote_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    rate: Annotated[str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,12})?$", examples=["1.0850"])]


class ExchangeRateOut(BaseModel):
    base_currency: str
    quote_currency: str
    rate: Decimal
    valid_from: datetime


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any
    after: Any
    request_id: str | None


class NodeEditIn(Strict):
    """Only the fields sent change; ``null`` clears the email or the phone (a name, language or time zone
    cannot be cleared)."""

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    language: Annotated[str | None, Field(max_length=8, examples=["pt_BR"])] = None
    time_zone: Annotated[str | None, Field(max_length=64, examples=["America/Sao_Paulo"])] = None
    email: Annotated[str | None, Field(min_length=3, max_length=254, examples=["alice@example.com"])] = None
    phone: Annotated[str | None, Field(min_length=1, max_length=32, examples=["+1 212 555 0100"])] = None


class PasswordChangeIn(Strict):
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Annotated[str, Field(min_length=10, max_length=256)]


class PasswordChangeOut(BaseModel):
    sessions_closed: int = Field(description="the user's other sessions, closed now")


class PasswordResetOut(BaseModel):
    login: str
    password: str = Field(description="the new password: shown this once, never again")
