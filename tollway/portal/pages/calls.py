"""Calls: a customer's own, an admin's subtree's; the list (filtered, paged, downloadable as CSV) and one call
with what it cost.

A customer sees its own charge only, never what the levels above it paid (their lines are left out here
whatever the service returns, and the service leaves them out of the CSV). The provider's and resellers'
admins see the calls of their subtree, narrowed to one account below them if they choose (one they may not
see answers 404, as one that does not exist); an agent sees totals, never calls: for it these pages do not
exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from tollway.calls import service as calls
from tollway.calls.service import CallFilter
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.periods import DAYS_TYPED_MAX, optional_period
from tollway.portal.web import CALL_READER_ROLES, CUSTOMER_ROLES, CallReaderDep, Visitor, render

router = APIRouter()
NAVIGATION = (NavItem("/calls", N_("Calls"), CALL_READER_ROLES, order=20),)
PAGE_SIZE = 50
NUMBER_TYPED_MAX = 32  # "+44 20 7946 0000", with its spaces
STATES = {
    "authorized": N_("Ringing"),
    "answered": N_("In progress"),
    "ended": N_("Ended"),
    "refused": N_("Refused"),
}
Day = Annotated[str, Query(max_length=DAYS_TYPED_MAX)]
Number = Annotated[str, Query(max_length=NUMBER_TYPED_MAX)]
State = Annotated[str, Query(max_length=16)]
Login = Annotated[str, Query(max_length=63)]


def _when(view: dict[str, Any], field: str) -> datetime | None:
    value = view.get(field)
    return datetime.fromisoformat(value) if value else None


def _digits(number: str) -> str | None:
    """A number as typed ('+44 20-79') as the prefix the service takes ('442079'); empty: None."""
    typed = "".join(character for character in number if character not in " +-().")
    return typed or None


def _filters(visitor: Visitor, since: str, until: str, number: str, state: str, account: str) -> dict[str, str]:
    customer = visitor.role in CUSTOMER_ROLES
    return {
        "since": since,
        "until": until,
        "number": number.strip(),
        "state": state,
        "account": "" if customer else account.strip(),
    }


def _where(visitor: Visitor, filters: dict[str, str]) -> CallFilter:
    first, last = optional_period(filters["since"], filters["until"], time_zone=visitor.time_zone)
    return CallFilter(
        account=filters["account"] or None,
        since=first,
        until=last,
        prefix=_digits(filters["number"]),
        state=filters["state"] or None,
    )


def _charge(visitor: Visitor, view: dict[str, Any]) -> dict[str, Any] | None:
    """The charge shown: a customer's own; to an admin, what the call's account paid (if it may see it)."""
    payer = visitor.login if visitor.role in CUSTOMER_ROLES else view["account"]
    found = [line for line in view.get("charges") or [] if line["account"] == payer]
    return found[0] if found else None


@router.get("/calls")
def call_list(
    visitor: CallReaderDep,
    since: Day = "",
    until: Day = "",
    number: Number = "",
    state: State = "",
    account: Login = "",
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    filters = _filters(visitor, since, until, number, state, account)
    found, next_after_id = calls.list_calls(
        visitor.database,
        principal=visitor.principal,
        where=_where(visitor, filters),
        after_id=after_id,
        limit=PAGE_SIZE,
    )
    rows = [view | {"started": _when(view, "created_at"), "charge": _charge(visitor, view)} for view in found]
    return render(
        visitor,
        "calls.html",
        values={
            "calls": rows,
            "filters": filters,
            "staff_view": visitor.role not in CUSTOMER_ROLES,
            "paging": staff.paging(
                filters, first_page=after_id == 0, next_start=("after_id", next_after_id) if next_after_id else None
            ),
            "states": STATES,
        },
    )


@router.get("/calls.csv")
def call_export(
    visitor: CallReaderDep,
    since: Day = "",
    until: Day = "",
    number: Number = "",
    state: State = "",
    account: Login = "",
) -> Response:
    """The calls the list shows, every page of them, as the API's CSV (all six decimals): a line per charge
    the visitor may see."""
    where = _where(visitor, _filters(visitor, since, until, number, state, account))
    lines: Iterator[str] = calls.export_calls(visitor.database, principal=visitor.principal, where=where)
    return StreamingResponse(
        (line.encode() for line in lines),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="calls.csv"', "cache-control": "no-store"},
    )


@router.get("/calls/{call_id:path}")
def call_detail(visitor: CallReaderDep, call_id: str) -> Response:
    view = calls.get_call(visitor.database, call_id, principal=visitor.principal)
    return render(
        visitor,
        "call.html",
        values={
            "call": view,
            "charge": _charge(visitor, view),
            "staff_view": visitor.role not in CUSTOMER_ROLES,
            "started": _when(view, "created_at"),
            "answered": _when(view, "answered_at"),
            "ended": _when(view, "ended_at"),
            "states": STATES,
        },
    )
