"""Lines: the caller ids and FollowMe of a client (``/lines/{login}``) or of an extension of an organization
(``/lines/{login}/extensions/{number}``). Numbers travel in E.164 with their '+' (``+442079460001``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import Reply, Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.lines import service as lines
from tollway.lines.model import FOLLOW_ME_ENTRIES_MAX, RING_SECONDS_MAX, RING_SECONDS_MIN, FollowMeEntry
from tollway.lines.service import LineView

router = APIRouter(prefix="/lines/{login}", tags=["lines"], responses=ERRORS)  # type: ignore[arg-type]
EXTENSION = "/extensions/{extension}"

Number = Annotated[str, Field(min_length=1, max_length=32, examples=["+442079460001"])]


class CallerIdIn(Strict):
    number: Number


class CallerIdOut(Reply):
    number: str
    verified: bool
    default: bool


class FollowMeEntryIO(Strict):
    number: Number = Field(description="an outside number (E.164), or an extension number of the organization")
    ring_seconds: Annotated[int, Field(ge=RING_SECONDS_MIN, le=RING_SECONDS_MAX)] = 20


class FollowMeIn(Strict):
    entries: Annotated[list[FollowMeEntryIO], Field(max_length=FOLLOW_ME_ENTRIES_MAX)]


class LineOut(Reply):
    login: str
    extension: str | None
    caller_ids: list[CallerIdOut]
    default_caller_id: str | None = Field(description="what the line presents when it asks for nothing else")
    choices: list[str] = Field(description="an extension: its organization's verified numbers, which it may take")
    follow_me: list[FollowMeEntryIO]


def line_out(view: LineView) -> LineOut:
    return LineOut(
        login=view.login,
        extension=view.extension,
        caller_ids=[CallerIdOut(number=c.number, verified=c.verified, default=c.default) for c in view.caller_ids],
        default_caller_id=view.default_caller_id,
        choices=view.choices,
        follow_me=[FollowMeEntryIO(number=e.number, ring_seconds=e.ring_seconds) for e in view.follow_me],
    )


def _entries(body: FollowMeIn) -> list[FollowMeEntry]:
    return [FollowMeEntry(entry.number, entry.ring_seconds) for entry in body.entries]


@router.get("", summary="A client's line: caller ids and FollowMe")
def get_line(login: str, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.get_line(database, login=login, principal=principal))


@router.get(EXTENSION, summary="An extension's line: caller ids and FollowMe")
def get_extension_line(login: str, extension: str, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.get_line(database, login=login, extension=extension, principal=principal))


@router.post("/caller-ids", status_code=201, summary="Add a number the client may present (verified by its owner)")
def add_caller_id(login: str, body: CallerIdIn, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.add_caller_id(database, login=login, number=body.number, principal=principal))


@router.post(EXTENSION + "/caller-ids", status_code=201, summary="Give an extension one of its organization's numbers")
def add_extension_caller_id(
    login: str, extension: str, body: CallerIdIn, database: DatabaseDep, principal: PrincipalDep
) -> LineOut:
    view = lines.add_caller_id(database, login=login, extension=extension, number=body.number, principal=principal)
    return line_out(view)


@router.put("/caller-ids/{number}/verified", summary="An owner verifies that the client holds the number")
def verify_caller_id(login: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.verify_caller_id(database, login=login, number=number, principal=principal))


@router.put("/caller-ids/{number}/default", summary="Present this number by default")
def set_default(login: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.set_default_caller_id(database, login=login, number=number, principal=principal))


@router.put(EXTENSION + "/caller-ids/{number}/default", summary="The extension presents this number by default")
def set_extension_default(
    login: str, extension: str, number: str, database: DatabaseDep, principal: PrincipalDep
) -> LineOut:
    view = lines.set_default_caller_id(database, login=login, extension=extension, number=number, principal=principal)
    return line_out(view)


@router.delete("/caller-ids/{number}", summary="Present this number no more")
def remove_caller_id(login: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.remove_caller_id(database, login=login, number=number, principal=principal))


@router.delete(EXTENSION + "/caller-ids/{number}", summary="The extension presents this number no more")
def remove_extension_caller_id(
    login: str, extension: str, number: str, database: DatabaseDep, principal: PrincipalDep
) -> LineOut:
    view = lines.remove_caller_id(database, login=login, extension=extension, number=number, principal=principal)
    return line_out(view)


@router.put("/follow-me", summary="Replace the client's FollowMe list (empty: off)")
def set_follow_me(login: str, body: FollowMeIn, database: DatabaseDep, principal: PrincipalDep) -> LineOut:
    return line_out(lines.set_follow_me(database, login=login, entries=_entries(body), principal=principal))


@router.put(EXTENSION + "/follow-me", summary="Replace the extension's FollowMe list (empty: off)")
def set_extension_follow_me(
    login: str, extension: str, body: FollowMeIn, database: DatabaseDep, principal: PrincipalDep
) -> LineOut:
    view = lines.set_follow_me(database, login=login, extension=extension, entries=_entries(body), principal=principal)
    return line_out(view)
