"""Credit control for switches: authorize, answer, update and end calls; list active calls with their grants.

A refused call is an answer, not an error: ``200`` with ``status: refused``, the reason, the level that
refused and the SIP code to send. Errors (4xx) are for requests that are wrong: a bad call id, a call
the caller may not see, a missing API key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field, model_validator

from tollway.calls import service as calls
from tollway.calls.service import CallFilter, CallRequest, CallSettings
from tollway.cards.model import pin_digest
from tollway.cards.payers import CardCall
from tollway.http.api.cards import pin_key_of
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, AfterId, PageSize, Reply, Strict, json_reply
from tollway.http.auth import DatabaseDep, PrincipalDep

router = APIRouter(prefix="/calls", tags=["calls"], responses=ERRORS)  # type: ignore[arg-type]

CallId = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x20\x7f-\uffff/?#%]+$", examples=["a84b4c76e66710@pc33"]),
]
Text64 = Annotated[str, Field(max_length=64)]
Seconds = Annotated[int, Field(ge=0, le=144_000)]


class AuthorizeIn(Strict):
    call_id: CallId
    account: Annotated[str, Field(min_length=1, max_length=63, examples=["alice"])] | None = None
    extension: Annotated[str, Field(min_length=3, max_length=317, examples=["101@acme"])] | None = Field(
        default=None, description="instead of account: the SIP extension that placed the call, username@domain"
    )
    access_number: Annotated[str, Field(min_length=2, max_length=32, examples=["+18005550100"])] | None = Field(
        default=None, description="instead of account: the access number a calling card's holder dialed"
    )
    pin: Annotated[str, Field(min_length=10, max_length=16, pattern=r"^[0-9]+$")] | None = Field(
        default=None, description="with access_number: the card's PIN; none: the caller's number must be registered"
    )
    caller: Text64 = ""
    callee: Annotated[str, Field(min_length=1, max_length=64, examples=["+44 20 7946 0000"])]
    answered: bool = Field(default=False, description="the call is already answered: its grant starts now")

    @model_validator(mode="after")
    def _one_payer(self) -> AuthorizeIn:
        named = [self.account is not None, self.extension is not None, self.access_number is not None]
        if sum(named) != 1:
            raise ValueError(
                "name the account that pays, the extension that placed the call, or a card's access number: one"
            )
        if self.pin is not None and self.access_number is None:
            raise ValueError("a PIN goes with the access number dialed")
        return self


class AuthorizeOut(Reply):
    call_id: str
    status: Literal["authorized", "refused"]
    max_seconds: int | None = Field(default=None, description="the hard maximum the switch must enforce")
    grant_seconds: int | None = Field(default=None, description="talk time reserved so far, from the answer")
    final: bool | None = Field(default=None, description="no extension will follow this grant")
    limited_by: str | None = Field(default=None, description="the level whose funds set max_seconds")
    reason: str | None = Field(default=None, description="why it was refused (see docs/credit-control.md)")
    level: str | None = Field(default=None, description="the level that refused it")
    sip_code: int | None = Field(default=None, description="the SIP final response to send: 402, 403, 404, 484")
    message: str | None = None
    internal: bool | None = Field(default=None, description="a call between two extensions: free, not recorded")


class UpdateIn(Strict):
    sequence: Annotated[int, Field(ge=1, le=2**31 - 1, description="1, 2, 3 ... per call; a repeat is a retry")]
    elapsed_seconds: Seconds


class UpdateOut(Reply):
    call_id: str
    status: str
    max_seconds: int
    grant_seconds: int
    final: bool
    reason: str | None = None
    level: str | None = None


class EndIn(Strict):
    duration_seconds: Seconds = Field(description="answered seconds as the switch measured them; 0 if unanswered")
    reason: Annotated[str, Field(max_length=48)] = "normal"


class ChargeOut(Reply):
    level: int
    account: str
    tariff: str
    currency: str
    prefix: str
    description: str
    price_micros: int
    connect_fee_micros: int
    reserved_micros: int | None = None
    plan_seconds_reserved: int | None = None
    billed_seconds: int | None = None
    plan_seconds: int | None = None
    amount_micros: int | None = None
    overshoot_micros: int | None = None


class CallOut(Reply):
    call_id: str
    reference: str = Field(description="the reference its ledger transfers carry")
    account: str
    caller: str
    callee: str
    number: str | None
    status: str
    max_seconds: int
    grant_seconds: int
    final: bool
    limited_by: str | None
    reason: str | None
    level: str | None
    created_at: str
    answered_at: str | None
    grant_expires_at: str | None
    ended_at: str | None
    duration_seconds: int | None = Field(description="the seconds charged")
    reported_duration_seconds: int | None = Field(default=None, description="the seconds the switch reported")
    overshoot_seconds: int = Field(description="reported seconds past the grant")
    overshoot_reason: Literal["beyond_grant", "beyond_wall_clock"] | None = Field(
        default=None, description="why the reported duration was not believed and at most the grant was charged"
    )
    end_reason: str | None
    disconnect: str | None
    charges: list[ChargeOut] | None = None


class CallPage(Reply):
    items: list[CallOut]
    next_after_id: int | None


async def settings_of(request: Request) -> CallSettings:  # no I/O: async, so no trip through the thread pool
    settings: CallSettings = request.app.state.call_settings
    return settings


SettingsDep = Annotated[CallSettings, Depends(settings_of)]


def _out(view: dict[str, Any]) -> CallOut:
    return CallOut.model_validate(view)


# The switch's routes answer with the JSON of their reply model, made in the worker thread that ran the engine
# (json_reply): FastAPI would validate the model a second time through another trip to the thread pool.
@router.post(
    "/authorize",
    summary="Authorize a call: the longest it may last and its first grant, or why not",
    response_model=AuthorizeOut,
)
def authorize(
    body: AuthorizeIn, request: Request, database: DatabaseDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    card = None
    if body.access_number is not None:  # the PIN goes no further than its digest
        digest = None if body.pin is None else pin_digest(pin_key_of(request), body.pin)
        card = CardCall(body.access_number, digest)
    call = CallRequest(
        body.call_id,
        body.account or "",
        body.caller,
        body.callee,
        answered=body.answered,
        extension=body.extension,
        card=card,
    )
    answer = calls.authorize_call(database, call, principal=principal, settings=settings)
    return json_reply(AuthorizeOut.model_validate(answer))


@router.post("/{call_id}/answer", summary="The callee answered: the grant's clock starts", response_model=CallOut)
def answer(call_id: CallId, database: DatabaseDep, principal: PrincipalDep) -> Response:
    return json_reply(_out(calls.answer_call(database, call_id, principal=principal)))


@router.post(
    "/{call_id}/update",
    summary="Interim update: the call is up; extend its grant if it runs low",
    response_model=UpdateOut,
)
def update(
    call_id: CallId, body: UpdateIn, database: DatabaseDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    answer = calls.update_call(
        database,
        call_id,
        sequence=body.sequence,
        elapsed_seconds=body.elapsed_seconds,
        principal=principal,
        settings=settings,
    )
    return json_reply(UpdateOut.model_validate(answer))


@router.post(
    "/{call_id}/end", summary="The call ended: charge every level and write the call record", response_model=CallOut
)
def end(
    call_id: CallId, body: EndIn, database: DatabaseDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    view = calls.end_call(
        database,
        call_id,
        duration_seconds=body.duration_seconds,
        reason=body.reason,
        principal=principal,
        settings=settings,
    )
    return json_reply(_out(view))


@router.get("/{call_id}", summary="One call: its grant while active, its charges once ended")
def get(call_id: CallId, database: DatabaseDep, principal: PrincipalDep) -> CallOut:
    return _out(calls.get_call(database, call_id, principal=principal))


AccountFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=63, description="the calls of this account and of every account below it"),
]
Since = Annotated[datetime | None, Query(description="calls started at or after this instant (with its time zone)")]
Until = Annotated[datetime | None, Query(description="calls started before this instant (with its time zone)")]
PrefixFilter = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,15}$", description="the E.164 number dialled starts with these digits")
]
StateFilter = Annotated[
    Literal["authorized", "answered", "ended", "refused"] | None, Query(description="the call's state")
]


def call_filter(
    account: AccountFilter = None,
    since: Since = None,
    until: Until = None,
    prefix: PrefixFilter = None,
    state: StateFilter = None,
    active: Annotated[bool | None, Query(description="true: calls up now; false: ended or refused")] = None,
) -> CallFilter:
    return CallFilter(account=account, since=since, until=until, prefix=prefix, state=state, active=active)


FilterDep = Annotated[CallFilter, Depends(call_filter)]


@router.get("", summary="Call records you may see, by ascending id, each with the charges you may see")
def list_calls(
    database: DatabaseDep,
    principal: PrincipalDep,
    where: FilterDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[AfterId, Query()] = 0,
) -> CallPage:
    page, next_after_id = calls.list_calls(database, principal=principal, where=where, after_id=after_id, limit=limit)
    return CallPage(items=[_out(view) for view in page], next_after_id=next_after_id)


exports = APIRouter(tags=["calls"], responses=ERRORS)  # type: ignore[arg-type]


@exports.get(
    "/calls.csv",
    summary="Every call record you may see, filtered as the list, as CSV: a line per charge you may see",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_calls(database: DatabaseDep, principal: PrincipalDep, where: FilterDep) -> StreamingResponse:
    lines = calls.export_calls(database, principal=principal, where=where)
    return StreamingResponse(
        (line.encode() for line in lines),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="calls.csv"'},
    )
