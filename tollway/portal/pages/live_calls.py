"""Live calls (the provider's and resellers' admins): the calls in progress in the login's subtree, counted and
listed, with how long each has lasted and what is reserved for it as the login may see it (what the call's
account holds, and what the login itself holds for its owner). The list asks for itself again every few
seconds (htmx), so a new call shows up and an ended one disappears without a reload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response

from tollway.calls import reports
from tollway.clock import utc_now
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, render

router = APIRouter()
NAVIGATION = (NavItem("/live-calls", N_("Live calls"), ADMIN_ROLES, order=21),)
POLL_SECONDS = 3
LIVE_CALLS_SHOWN = 100


def _line(view: dict[str, Any], account: str) -> dict[str, Any] | None:
    found = [line for line in view.get("charges") or [] if line["account"] == account]
    return found[0] if found else None


def _row(visitor: Visitor, view: dict[str, Any], now: datetime) -> dict[str, Any]:
    started = datetime.fromisoformat(view["created_at"])
    answered = datetime.fromisoformat(view["answered_at"]) if view.get("answered_at") else None
    customer = _line(view, view["account"])
    return view | {
        "started": started,
        "seconds": max(0, int((now - (answered or started)).total_seconds())),
        "customer_line": customer,
        "own_line": _line(view, visitor.login) if view["account"] != visitor.login else None,
    }


@router.get("/live-calls")
def live_calls(visitor: AdminDep) -> Response:
    found = reports.live_calls(visitor.database, visitor.principal, limit=LIVE_CALLS_SHOWN)
    now = utc_now()
    return render(
        visitor,
        "live_calls.html",
        values={
            "live": found,
            "rows": [_row(visitor, view, now) for view in found.calls],
            "poll_seconds": POLL_SECONDS,
            "now": now,
        },
    )
