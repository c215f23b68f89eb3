"""The switch's subscriber database: what a SIP extension's digest is checked against, and where its calls go.

For switches (an API key with ``calls:control``, as for credit control): Kamailio asks on every REGISTER
and INVITE from an extension (deploy/kamailio/kamailio.cfg; docs/switches.md). An extension the switch
may not serve, or that does not exist or is disabled, answers ``status: unknown``, alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from tollway.access.model import Action, Forbidden
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import Reply, Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.organizations import sip, trunks

router = APIRouter(prefix="/sip", tags=["sip"], responses=ERRORS)  # type: ignore[arg-type]


class LookupIn(Strict):
    domain: Annotated[str, Field(min_length=1, max_length=253, examples=["acme"])]
    username: Annotated[str, Field(min_length=1, max_length=63, examples=["101"])]
    callee: Annotated[str, Field(min_length=1, max_length=64, examples=["102"])] | None = None


class LookupOut(Reply):
    status: str = Field(description="found, or unknown")
    ha1: str = Field(description="MD5(username:domain:secret), for the switch to check the digest")
    organization: str
    extension: str
    caller_id: str = Field(description="the number it presents on outside calls; empty: none")
    caller_ids: str = Field(description="the numbers it may present, space-separated")
    route: str = Field(description="with a callee: internal, outside, or unavailable")
    target: str = Field(description="internal: the SIP username of the extension called")
    follow_me: str = Field(description="internal: ext:<username>:<seconds> and out:<number>:<seconds>, in order")
    voicemail: bool = Field(description="the extension's unanswered calls go to voicemail (for the switch to do)")
    recording: bool = Field(description="the extension's calls are recorded (for the switch's media server to do)")
    target_voicemail: bool = Field(description="internal: the called extension has voicemail")
    target_recording: bool = Field(description="internal: the called extension's calls are recorded")


@router.post("/lookup", summary="An extension's digest credential, and where a call of it goes")
def lookup(body: LookupIn, database: DatabaseDep, principal: PrincipalDep) -> LookupOut:
    if Action.CALLS_CONTROL not in principal.actions:
        raise Forbidden(Action.CALLS_CONTROL)
    found = sip.lookup(database, domain=body.domain, username=body.username, callee=body.callee, principal=principal)
    return LookupOut(**{field: getattr(found, field) for field in LookupOut.model_fields})


class TrunkIn(Strict):
    address: Annotated[str, Field(min_length=2, max_length=45, examples=["198.51.100.7"])]


class TrunkOut(Reply):
    status: str = Field(description="found, or unknown")
    account: str = Field(description="the wholesale client whose networks hold the address")


@router.post("/trunk", summary="Which wholesale trunk a call from this address is")
def trunk(body: TrunkIn, database: DatabaseDep, principal: PrincipalDep) -> TrunkOut:
    if Action.CALLS_CONTROL not in principal.actions:
        raise Forbidden(Action.CALLS_CONTROL)
    account = trunks.trunk_for(database, address=body.address, principal=principal)
    return TrunkOut(status="unknown" if account is None else "found", account=account or "")
