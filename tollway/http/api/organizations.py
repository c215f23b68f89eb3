"""Organizations (UC/PBX clients): settings, limits, users, extensions and their SIP secrets.

An organization's admins (role ``organization_admin``) and the resellers above it manage it here; a user
reads its own account and extensions. Secrets are in the answer that makes or rotates them, and never again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from tollway.config import Settings as AppSettings
from tollway.errors import Refusal
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, PageSize, PositiveAmount, Problem, Reply, Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_decimal, to_micros
from tollway.organizations import imports, trunks
from tollway.organizations import service as organizations
from tollway.organizations.model import Caps, ExtensionStatus, Limits, OrganizationRole, Wallet
from tollway.organizations.service import ExtensionView, NewExtension, NewUser, OrganizationView, UserView
from tollway.sealing import Sealer
from tollway.tree.model import Status

router = APIRouter(tags=["organizations"], responses=ERRORS)  # type: ignore[arg-type]

Limit = Annotated[int, Field(ge=0, le=100_000)]
Number = Annotated[str, Field(min_length=1, max_length=6, examples=["101"])]


def sealer_of(request: Request) -> Sealer:
    """The installation's sealer, made once per application from its settings."""
    sealer: Sealer | None = getattr(request.app.state, "sealer", None)
    if sealer is None:
        sealer = Sealer.from_settings(AppSettings())
        request.app.state.sealer = sealer
    return sealer


class LimitsIO(Strict):
    users_limit: Limit | None = None
    extensions_per_user_limit: Limit | None = None


class OrganizationIn(Strict):
    wallet: Wallet | None = Field(default=None, description="who pays for users' calls: each user, or the organization")
    extension_digits: Annotated[int, Field(ge=2, le=6)] | None = None
    sip_domain: Annotated[str, Field(max_length=253, examples=["acme.pbx.example.net"])] | None = None


class OrganizationOut(Reply):
    login: str
    name: str
    currency: str
    wallet: Wallet
    extension_digits: int
    sip_domain: str
    limits: LimitsIO
    limits_in_force: LimitsIO
    users: int
    extensions: int


class UserIn(Strict):
    login: Annotated[str, Field(min_length=2, max_length=63, examples=["ann"])]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[str, Field(max_length=254)] | None = None
    language: Annotated[str, Field(max_length=8)] | None = None
    role: OrganizationRole = OrganizationRole.MEMBER
    daily_cap: PositiveAmount | None = None
    monthly_cap: PositiveAmount | None = None


class UserPatch(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = None
    language: Annotated[str, Field(max_length=8)] | None = None
    role: OrganizationRole | None = None
    caps: bool = Field(default=False, description="true: daily_cap and monthly_cap replace the caps (null: none)")
    daily_cap: PositiveAmount | None = None
    monthly_cap: PositiveAmount | None = None
    status: Status | None = Field(
        default=None, description="suspended: its extensions stop registering and calling; closed: its owners only"
    )


class UserOut(Reply):
    login: str
    name: str
    email: str | None
    language: str
    status: str
    currency: str
    organization: str
    role: OrganizationRole
    daily_cap: Decimal | None
    monthly_cap: Decimal | None
    extensions: list[str]


class UserPage(Reply):
    items: list[UserOut]
    next_after_id: int | None


class ExtensionIn(Strict):
    user: Annotated[str, Field(min_length=2, max_length=63)]
    number: Number
    sip_username: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    voicemail: bool = False
    recording: bool = False


class ExtensionPatch(Strict):
    voicemail: bool | None = None
    recording: bool | None = None
    status: ExtensionStatus | None = None


class ExtensionOut(Reply):
    organization: str
    user: str
    number: str
    sip_username: str
    sip_domain: str
    voicemail: bool
    recording: bool
    status: ExtensionStatus


class ExtensionSecretOut(ExtensionOut):
    secret: str = Field(description="the SIP password: shown in this answer only")


def _limits(limits: Limits) -> LimitsIO:
    return LimitsIO(users_limit=limits.users, extensions_per_user_limit=limits.extensions_per_user)


def organization_out(view: OrganizationView) -> OrganizationOut:
    return OrganizationOut(
        login=view.node.login,
        name=view.node.name,
        currency=view.node.currency,
        wallet=view.settings.wallet,
        extension_digits=view.settings.extension_digits,
        sip_domain=view.settings.sip_domain,
        limits=_limits(view.limits),
        limits_in_force=_limits(view.limits_in_force),
        users=view.users,
        extensions=view.extensions,
    )


def _amount(micros: int | None) -> Decimal | None:
    return None if micros is None else to_decimal(micros)


def user_out(view: UserView) -> UserOut:
    return UserOut(
        login=view.node.login,
        name=view.node.name,
        email=view.email,
        language=view.node.language,
        status=str(view.node.status),
        currency=view.node.currency,
        organization=view.organization,
        role=view.role,
        daily_cap=_amount(view.caps.day_micros),
        monthly_cap=_amount(view.caps.month_micros),
        extensions=view.extensions,
    )


def extension_out(view: ExtensionView) -> ExtensionOut:
    return ExtensionOut(**{field: getattr(view, field) for field in ExtensionOut.model_fields})


def _caps(daily: str | None, monthly: str | None) -> Caps:
    return Caps(None if daily is None else to_micros(daily), None if monthly is None else to_micros(monthly))


@router.get("/organizations/{login}", summary="Read an organization: its settings, limits and counts")
def get_organization(login: str, database: DatabaseDep, principal: PrincipalDep) -> OrganizationOut:
    return organization_out(organizations.get_organization(database, login=login, principal=principal))


@router.put("/organizations/{login}", summary="Change who pays, the length of extension numbers or the SIP domain")
def configure(
    login: str, body: OrganizationIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> OrganizationOut:
    view = organizations.configure(
        database,
        login=login,
        wallet=body.wallet,
        extension_digits=body.extension_digits,
        sip_domain=body.sip_domain,
        sealer=sealer_of(request) if body.sip_domain is not None else None,
        principal=principal,
    )
    return organization_out(view)


@router.put(
    "/nodes/{login}/organization-limits", summary="Limit an organization, or every organization below a reseller"
)
def set_limits(login: str, body: LimitsIO, database: DatabaseDep, principal: PrincipalDep) -> LimitsIO:
    limits = Limits(body.users_limit, body.extensions_per_user_limit)
    return _limits(organizations.set_limits(database, login=login, limits=limits, principal=principal))


@router.get("/organizations/{login}/users", summary="The organization's users, by ascending id")
def list_users(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> UserPage:
    users = organizations.list_users(database, organization=login, limit=limit, after_id=after_id, principal=principal)
    next_after_id = users[-1].node.id if len(users) == limit else None
    return UserPage(items=[user_out(u) for u in users], next_after_id=next_after_id)


@router.post("/organizations/{login}/users", status_code=201, summary="Add a user (with its own account)")
def create_user(login: str, body: UserIn, database: DatabaseDep, principal: PrincipalDep) -> UserOut:
    new = NewUser(
        login=body.login,
        name=body.name,
        email=body.email,
        language=body.language,
        role=body.role,
        caps=_caps(body.daily_cap, body.monthly_cap),
    )
    return user_out(organizations.create_user(database, organization=login, new=new, principal=principal))


@router.get("/organizations/{login}/users/{user}", summary="Read a user")
def get_user(login: str, user: str, database: DatabaseDep, principal: PrincipalDep) -> UserOut:
    return user_out(organizations.get_user(database, organization=login, login=user, principal=principal))


@router.patch("/organizations/{login}/users/{user}", summary="Change a user's details, role, spending caps or status")
def update_user(login: str, user: str, body: UserPatch, database: DatabaseDep, principal: PrincipalDep) -> UserOut:
    view = organizations.update_user(
        database,
        organization=login,
        login=user,
        name=body.name,
        email=body.email,
        language=body.language,
        role=body.role,
        caps=_caps(body.daily_cap, body.monthly_cap) if body.caps else None,
        status=body.status,
        principal=principal,
    )
    return user_out(view)


@router.get("/organizations/{login}/extensions", summary="The organization's extensions, or one user's, by number")
def list_extensions(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    user: Annotated[str | None, Query(max_length=63)] = None,
    after: Annotated[str, Query(max_length=6)] = "",
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
) -> list[ExtensionOut]:
    found = organizations.list_extensions(
        database, organization=login, user=user, after=after, limit=limit, principal=principal
    )
    return [extension_out(view) for view in found]


@router.post(
    "/organizations/{login}/extensions", status_code=201, summary="Add an extension; its SIP secret is shown once"
)
def create_extension(
    login: str, body: ExtensionIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> ExtensionSecretOut:
    new = NewExtension(
        user=body.user,
        number=body.number,
        sip_username=body.sip_username,
        voicemail=body.voicemail,
        recording=body.recording,
    )
    view, secret = organizations.create_extension(
        database, organization=login, new=new, sealer=sealer_of(request), principal=principal
    )
    return ExtensionSecretOut(**extension_out(view).model_dump(), secret=secret)


@router.get("/organizations/{login}/extensions/{number}", summary="Read an extension")
def get_extension(login: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> ExtensionOut:
    return extension_out(organizations.get_extension(database, organization=login, number=number, principal=principal))


@router.patch("/organizations/{login}/extensions/{number}", summary="Voicemail, recording, or disable an extension")
def update_extension(
    login: str, number: str, body: ExtensionPatch, database: DatabaseDep, principal: PrincipalDep
) -> ExtensionOut:
    view = organizations.update_extension(
        database,
        organization=login,
        number=number,
        voicemail=body.voicemail,
        recording=body.recording,
        status=body.status,
        principal=principal,
    )
    return extension_out(view)


@router.post("/organizations/{login}/extensions/{number}/secret", summary="A new SIP secret, shown once")
def rotate_secret(
    login: str, number: str, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> ExtensionSecretOut:
    view, secret = organizations.rotate_secret(
        database, organization=login, number=number, sealer=sealer_of(request), principal=principal
    )
    return ExtensionSecretOut(**extension_out(view).model_dump(), secret=secret)


@router.delete("/organizations/{login}/extensions/{number}", status_code=204, summary="Delete an extension")
def delete_extension(login: str, number: str, database: DatabaseDep, principal: PrincipalDep) -> Response:
    organizations.delete_extension(database, organization=login, number=number, principal=principal)
    return Response(status_code=204)


class ImportOut(Reply):
    imported: int
    extensions: list[ExtensionSecretOut] = Field(description="each with its secret: shown in this answer only")


@router.post(
    "/organizations/{login}/imports",
    status_code=201,
    summary="Import VoipPanel 2.5 extension accounts from CSV: each line a user with one extension (all or nothing)",
    responses={413: {"model": Problem, "description": "the file is larger than 2 MiB"}},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_extension_accounts(
    login: str, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> ImportOut:
    body = bytearray()
    async for chunk in request.stream():  # only now, the caller authenticated: bounded by RequestBodyLimits
        body += chunk
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refusal("import_not_utf8", "an import is a CSV file in UTF-8") from None
    try:
        imported = imports.import_extension_accounts(
            database, organization=login, text=text, sealer=sealer_of(request), principal=principal
        )
    except imports.ImportRefused as refused:
        return JSONResponse(  # type: ignore[return-value]
            status_code=422,
            content={"reason": refused.reason, "message": refused.message, "problems": refused.problems[:50]},
        )
    extensions = [
        ExtensionSecretOut(**extension_out(item.extension).model_dump(), secret=item.secret) for item in imported
    ]
    return ImportOut(imported=len(extensions), extensions=extensions)


class TrunkNetworksIO(Strict):
    networks: Annotated[list[Annotated[str, Field(max_length=43)]], Field(max_length=20)] = Field(
        examples=[["198.51.100.0/24", "192.0.2.7"]]
    )


@router.get("/nodes/{login}/trunk-networks", summary="The networks a wholesale trunk sends its calls from")
def get_trunk_networks(login: str, database: DatabaseDep, principal: PrincipalDep) -> TrunkNetworksIO:
    return TrunkNetworksIO(networks=trunks.get_networks(database, login=login, principal=principal))


@router.put("/nodes/{login}/trunk-networks", summary="Replace the networks a wholesale trunk sends its calls from")
def set_trunk_networks(
    login: str, body: TrunkNetworksIO, database: DatabaseDep, principal: PrincipalDep
) -> TrunkNetworksIO:
    return TrunkNetworksIO(
        networks=trunks.set_networks(database, login=login, networks=body.networks, principal=principal)
    )
