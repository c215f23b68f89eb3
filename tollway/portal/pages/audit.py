"""The provider's audit log: who changed what, newest first, filtered by actor, action and days, 50 a page.

Read through ``access.read_audit`` (``audit:read`` on the provider's node: the whole tree). Provider admins
only: for anyone else the page does not exist (404).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from tollway.access import service as access
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.navigation import NavItem
from tollway.portal.periods import DAYS_TYPED_MAX, optional_period
from tollway.portal.web import PROVIDER_ROLES, ProviderDep, render

router = APIRouter()
NAVIGATION = (NavItem("/audit", N_("Audit log"), PROVIDER_ROLES, order=74),)
PAGE_SIZE = 50
Day = Annotated[str, Query(max_length=DAYS_TYPED_MAX)]
Text = Annotated[str, Query(max_length=100)]


def _shown(value: Any) -> str:
    """A change's before or after, as compact JSON text (escaped in the page like any text)."""
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


@router.get("/audit")
def audit_log(
    visitor: ProviderDep,
    actor: Text = "",
    action: Text = "",
    since: Day = "",
    until: Day = "",
    before_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    filters = {"actor": actor.strip(), "action": action.strip(), "since": since, "until": until}
    first, last = optional_period(since, until, time_zone=visitor.time_zone)
    entries = access.read_audit(
        visitor.database,
        visitor.principal,
        limit=PAGE_SIZE,
        before_id=before_id or None,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        since=first,
        until=last,
    )
    next_before_id = entries[-1].id if len(entries) == PAGE_SIZE else None
    return render(
        visitor,
        "audit.html",
        values={
            "entries": [(entry, _shown(entry.before), _shown(entry.after)) for entry in entries],
            "filters": filters,
            "paging": staff.paging(
                filters, first_page=before_id == 0, next_start=("before_id", next_before_id) if next_before_id else None
            ),
        },
    )
