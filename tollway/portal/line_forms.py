"""The caller id and FollowMe forms a line's page shows: a client's own line, an organization's numbers, an
extension. What the forms hold and how their fields are read; the routes are in ``pages/lines.py``.

A FollowMe list is edited as rows of a number and a ring time, in order; empty rows are left out, so the
form offers the list's entries and a few empty rows to add to it (at most ``FOLLOW_ME_ENTRIES_MAX``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollway.access.model import Action
from tollway.errors import Refusal
from tollway.lines import model as lines_model
from tollway.lines.model import FollowMeEntry
from tollway.lines.service import LineView
from tollway.portal.i18n import N_
from tollway.portal.web import Visitor

EMPTY_ROWS = 2  # rows offered beyond the list's entries
RING_SECONDS_DEFAULT = 20
LINE_SAVED = {
    "caller_id": N_("The caller ids are saved."),
    "follow_me": N_("FollowMe is saved."),
}


def line_values(visitor: Visitor, line: LineView, action: str) -> dict[str, Any]:
    """What a page needs to show a line's caller ids and FollowMe, with forms posted below ``action``."""
    held = {caller_id.number for caller_id in line.caller_ids}
    rows = [(entry.number, entry.ring_seconds) for entry in line.follow_me]
    rows += [("", RING_SECONDS_DEFAULT)] * min(EMPTY_ROWS, lines_model.FOLLOW_ME_ENTRIES_MAX - len(rows))
    return {
        "line": line,
        "line_action": action,
        "may_write_line": Action.LINES_WRITE in visitor.principal.actions,
        "choices_left": [number for number in line.choices if number not in held],
        "follow_me_rows": rows,
        "ring_seconds_min": lines_model.RING_SECONDS_MIN,
        "ring_seconds_max": lines_model.RING_SECONDS_MAX,
    }


def follow_me_entries(numbers: Sequence[str], ring_seconds: Sequence[str]) -> list[FollowMeEntry]:
    """The rows of a FollowMe form, in order, without the empty ones."""
    if len(numbers) != len(ring_seconds) or len(numbers) > lines_model.FOLLOW_ME_ENTRIES_MAX + EMPTY_ROWS:
        raise Refusal("request_invalid", "a FollowMe form has a ring time for each number")
    entries = []
    for number, seconds in zip(numbers, ring_seconds, strict=True):
        if not number.strip():
            continue
        text = seconds.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 3:
            raise Refusal("ring_seconds_invalid", f"{seconds!r} is not a number of seconds")
        entries.append(FollowMeEntry(number.strip(), int(text)))
    return entries
