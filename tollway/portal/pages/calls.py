"""A customer's calls: the list (paged) and one call with what it cost the customer.

A customer sees its own charge only, never what the levels above it paid (their lines are left out
here whatever the service returns).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from tollway.calls import service as calls
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.web import CUSTOMER_ROLES, CustomerDep, render

router = APIRouter()
NAVIGATION = (NavItem("/calls", N_("Calls"), CUSTOMER_ROLES, order=20),)
PAGE_SIZE = 50
STATES = {
    "authorized": N_("Ringing"),
    "answered": N_("In progress"),
    "ended": N_("Ended"),
    "refused": N_("Refused"),
}


def _when(view: dict[str, Any], field: str) -> datetime | None:
    value = view.get(field)
    return datetime.fromisoformat(value) if value else None


@router.get("/calls")
def call_list(visitor: CustomerDep, after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> Response:
    found, next_after_id = calls.list_calls(
        visitor.database, principal=visitor.principal, after_id=after_id, limit=PAGE_SIZE
    )
    rows = [view | {"started": _when(view, "created_at")} for view in found]
    return render(
        visitor,
        "calls.html",
        values={"calls": rows, "next_after_id": next_after_id, "first_page": after_id == 0, "states": STATES},
    )


@router.get("/calls/{call_id:path}")
def call_detail(visitor: CustomerDep, call_id: str) -> Response:
    view = calls.get_call(visitor.database, call_id, principal=visitor.principal)
    own = [line for line in view.get("charges", []) if line["account"] == visitor.login]
    return render(
        visitor,
        "call.html",
        values={
            "call": view,
            "charge": own[0] if own else None,
            "started": _when(view, "created_at"),
            "answered": _when(view, "answered_at"),
            "ended": _when(view, "ended_at"),
            "states": STATES,
        },
    )
