"""Tariffs, their rows and rate sheets; which tariff a node pays at; what a call would cost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tollway.errors import NotFound
from tollway.http.api.nodes import ERRORS
from tollway.http.api.rating_schemas import (
    AssignTariffIn,
    ChargeOut,
    DialPlanIn,
    Digits,
    QuoteIn,
    QuoteOut,
    RateIn,
    RateOut,
    RatePage,
    RowsOut,
    TariffIn,
    TariffOut,
    TariffPage,
    TariffUpdate,
)
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, AfterId, Login, PageSize, Problem
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_micros
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.rating.dialplan import DialPlan
from tollway.rating.quotes import quote
from tollway.rating.sheets import Layout, SheetRefused
from tollway.rating.tariff import Defaults, Derivation, Tariff
from tollway.store.database import Database

SHEET_PROBLEMS_SHOWN = 100

router = APIRouter(tags=["tariffs"], responses=ERRORS)  # type: ignore[arg-type]


def _out(database: Database, tariff: Tariff, rows: int | None = None) -> TariffOut:
    base = rating.base_of(database, tariff)
    return TariffOut.of(tariff, base=None if base is None else base.name, rows=rows)


@router.get("/tariffs", summary="The tariffs a node made")
def list_tariffs(
    owner: Login,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[AfterId, Query()] = 0,
) -> TariffPage:
    tariffs = rating.list_tariffs(database, owner_login=owner, limit=limit, after_id=after_id, principal=principal)
    return TariffPage(
        items=[_out(database, t) for t in tariffs], next_after_id=tariffs[-1].id if len(tariffs) == limit else None
    )


@router.post("/tariffs", status_code=201, summary="Create a tariff (with base: a derived tariff)")
def create_tariff(body: TariffIn, database: DatabaseDep, principal: PrincipalDep) -> TariffOut:
    tariff = rating.create_tariff(
        database,
        owner_login=body.owner,
        name=body.name,
        currency=body.currency,
        time_zone=body.time_zone,
        defaults=Defaults(body.minimal_time, body.resolution, body.grace_period),
        base_name=body.base,
        derivation=body.derivation(),
        principal=principal,
    )
    return _out(database, tariff, 0)


@router.get("/tariffs/{name}", summary="Read a tariff")
def get_tariff(name: str, database: DatabaseDep, principal: PrincipalDep) -> TariffOut:
    tariff, rows = rating.get_tariff(database, name=name, principal=principal)
    return _out(database, tariff, rows)


@router.patch("/tariffs/{name}", summary="Change a tariff's time zone, defaults, multiplier or addition")
def update_tariff(name: str, body: TariffUpdate, database: DatabaseDep, principal: PrincipalDep) -> TariffOut:
    current, _ = rating.get_tariff(database, name=name, principal=principal)
    d = current.defaults
    defaults = Defaults(
        d.minimal_time if body.minimal_time is None else body.minimal_time,
        d.resolution if body.resolution is None else body.resolution,
        d.grace_period if body.grace_period is None else body.grace_period,
    )
    derivation = None
    if body.multiplier is not None or body.addition is not None:
        was = current.derivation or Derivation()
        derivation = Derivation(
            was.multiplier if body.multiplier is None else Decimal(body.multiplier),
            was.addition_micros if body.addition is None else to_micros(body.addition),
        )
    tariff = rating.update_tariff(
        database, name=name, time_zone=body.time_zone, defaults=defaults, derivation=derivation, principal=principal
    )
    return _out(database, tariff)


@router.delete("/tariffs/{name}", status_code=204, summary="Delete a tariff nobody pays at and nothing follows")
def delete_tariff(name: str, database: DatabaseDep, principal: PrincipalDep) -> Response:
    rating.delete_tariff(database, name=name, principal=principal)
    return Response(status_code=204)


@router.get("/tariffs/{name}/rates", summary="A tariff's own rows, a page at a time")
def list_rates(
    name: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    prefix: Digits | None = None,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[AfterId, Query()] = 0,
) -> RatePage:
    rows = rating.list_rates(database, name=name, prefix=prefix, limit=limit, after_id=after_id, principal=principal)
    return RatePage(
        items=[RateOut.of(i, e) for i, e in rows], next_after_id=rows[-1][0] if len(rows) == limit else None
    )


@router.put("/tariffs/{name}/rates/{prefix}", summary="Set the rows of one prefix (an override; [] removes it)")
def set_prefix(
    name: str,
    prefix: Digits,
    body: Annotated[list[RateIn], Body(max_length=50)],
    database: DatabaseDep,
    principal: PrincipalDep,
) -> RowsOut:
    entries = [row.entry(prefix) for row in body]
    return RowsOut(rows=rating.set_prefix(database, name=name, prefix=prefix, entries=entries, principal=principal))


@router.put(
    "/tariffs/{name}/sheet",
    summary="Replace every row with a CSV rate sheet (all or nothing)",
    responses={413: {"model": Problem, "description": "the sheet is larger than SHEET_BYTES_MAX (200 MiB)"}},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_sheet(
    name: str, request: Request, database: DatabaseDep, principal: PrincipalDep, format: Layout = Layout.NATIVE
) -> RowsOut:
    body = bytearray()
    async for chunk in request.stream():  # only now, the caller authenticated: bounded by RequestBodyLimits
        body += chunk
    try:
        # Parsing a large sheet takes seconds: in a worker thread, so that the event loop goes on serving.
        rows = await run_in_threadpool(
            rating.import_sheet, database, name=name, stream=BytesIO(bytes(body)), layout=format, principal=principal
        )
    except SheetRefused as refused:
        problems = [{"line": e.line, "reason": e.reason, "message": e.message} for e in refused.errors]
        return JSONResponse(  # type: ignore[return-value]
            status_code=422,
            content={"reason": refused.reason, "message": refused.message, "problems": problems[:SHEET_PROBLEMS_SHOWN]},
        )
    return RowsOut(rows=rows)


@router.get(
    "/tariffs/{name}/sheet",
    summary="The rate sheet as CSV (a derived tariff: the prices it gives, or with own=true its overrides)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_sheet(
    name: str, database: DatabaseDep, principal: PrincipalDep, format: Layout = Layout.NATIVE, own: bool = False
) -> StreamingResponse:
    lines: Iterator[str] = rating.export_sheet(database, name=name, layout=format, own_only=own, principal=principal)
    filename = name.replace(":", "_")
    return StreamingResponse(
        (line.encode() for line in lines),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}.csv"'},
    )


@router.get("/nodes/{login}/tariff", summary="The tariff a node pays at")
def tariff_of(login: str, database: DatabaseDep, principal: PrincipalDep) -> TariffOut:
    tariff = rating.tariff_of(database, login=login, principal=principal)
    if tariff is None:
        raise NotFound("tariff", f"of {login}")
    return _out(database, tariff)


@router.put("/nodes/{login}/tariff", summary="Make a node below you pay at one of your tariffs")
def assign_tariff(login: str, body: AssignTariffIn, database: DatabaseDep, principal: PrincipalDep) -> TariffOut:
    return _out(database, rating.assign_tariff(database, login=login, tariff=body.tariff, principal=principal))


@router.put("/nodes/{login}/dial-plan", summary="How a node's dialed numbers become E.164 (inherited below it)")
def set_dial_plan(login: str, body: DialPlanIn, database: DatabaseDep, principal: PrincipalDep) -> DialPlanIn:
    plan = DialPlan(body.country_code, body.international_prefix, body.national_prefix)
    subscriptions.set_dial_plan(database, login=login, plan=plan, principal=principal)
    return body


@router.post("/nodes/{login}/quote", summary="What a call would cost, at every level you may see")
def quote_call(login: str, body: QuoteIn, database: DatabaseDep, principal: PrincipalDep) -> QuoteOut:
    start = body.start or datetime.now(UTC)
    number, charges = quote(
        database,
        login=login,
        dialed=body.number,
        start=start if start.tzinfo else start.replace(tzinfo=UTC),
        duration=body.duration,
        principal=principal,
    )
    return QuoteOut(number=number, charges=[ChargeOut.of(c) for c in charges])
