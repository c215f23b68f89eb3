"""Organizations (UC/PBX clients): their users and extensions, for the organization's admins and the resellers
above it.

- An organization's admin (``organization_admin``) opens its organization (``/organization``): its users and
  extensions, with the forms that create, edit and suspend them. An extension's SIP secret is shown once, on
  the page that answers its creation or its rotation, and never again.
- The provider's and resellers' admins list the organizations below them (``/organizations``), open one,
  manage it as its admins do, and set its limits (an owner's action).
- A user of an organization sees its own extensions (``/extensions``) and opens each for its caller ids and
  FollowMe (``tollway/portal/pages/lines.py``).

Everything goes through the services the API calls, with the visitor's principal: another organization,
user or extension answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Response

from tollway.access.model import Action, Role
from tollway.config import Settings as AppSettings
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.lines import service as lines
from tollway.organizations import service as organizations
from tollway.organizations.model import Caps, ExtensionStatus, Limits, OrganizationRole, Wallet
from tollway.organizations.service import NewExtension, NewUser
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.line_forms import LINE_SAVED, line_values
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.web import SignedInDep, StaffDep, Visitor, redirect, render
from tollway.sealing import Sealer
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Status

router = APIRouter()
NAVIGATION = (
    NavItem("/organizations", N_("Organizations"), staff.ADMIN_ROLES, order=25),
    NavItem("/organization", N_("Organization"), frozenset({Role.ORGANIZATION_ADMIN}), order=20),
    NavItem("/extensions", N_("My extensions"), frozenset({Role.ORGANIZATION_USER}), order=20),
)
PAGE_SIZE = 50
SAVED = {
    "limits": N_("The limits are set."),
    "user_created": N_("The user is created."),
    "user": N_("The user is saved."),
    "status": N_("The user's status is changed."),
    "extension": N_("The extension is saved."),
    "settings": N_("The organization's settings are saved."),
    "extension_deleted": N_("The extension is deleted; its number is free again."),
}
ROLES = {OrganizationRole.ADMIN: N_("Admin"), OrganizationRole.MEMBER: N_("Member")}
EXTENSION_STATUSES = {ExtensionStatus.ACTIVE: N_("Active"), ExtensionStatus.DISABLED: N_("Disabled")}
WALLETS = {Wallet.USER: N_("Each user pays from its own balance"), Wallet.ORGANIZATION: N_("The organization pays")}
Text = Annotated[str, Form(max_length=200)]
Short = Annotated[str, Form(max_length=63)]
LimitField = Annotated[str, Form(max_length=12)]


def sealer_of(visitor: Visitor) -> Sealer:
    """The installation's sealer (SIP secrets are sealed with it): the application's, else the configuration's."""
    sealer = visitor.settings.sealer
    return sealer if isinstance(sealer, Sealer) else Sealer.from_settings(AppSettings())


def _saved(visitor: Visitor) -> str | None:
    saved = visitor.request.query_params.get("saved", "")
    return SAVED.get(saved) or LINE_SAVED.get(saved)


def _error(visitor: Visitor, error: Refusal | None) -> str | None:
    return refusal_text(visitor, error) if error else None


def _status(error: Refusal | None) -> int:
    return status_for(error) if error else 200


# -- the staff's list ------------------------------------------------------------------------------------


@router.get("/organizations")
def organization_list(
    visitor: StaffDep,
    q: Annotated[str, Query(max_length=tree.SEARCH_LENGTH_MAX)] = "",
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    if visitor.role not in staff.ADMIN_ROLES:  # an agent's clients are retail: no organizations
        raise NotFound("page", "/organizations")
    found = tree.visible_nodes(
        visitor.database,
        visitor.principal,
        client_type=ClientType.PBX,
        search=q.strip(),
        limit=PAGE_SIZE,
        after_id=after_id,
        below_only=True,
    )
    next_after_id = found[-1].id if len(found) == PAGE_SIZE else None
    return render(
        visitor,
        "organizations.html",
        values={
            "organizations": found,
            "q": q.strip(),
            "statuses": staff.STATUSES,
            "next_page": staff.query(q=q.strip(), after_id=next_after_id) if next_after_id else None,
            "first_page": after_id == 0,
        },
    )


# -- one organization ------------------------------------------------------------------------------------


@router.get("/organization")
def own_organization(visitor: SignedInDep) -> Response:
    """An organization's admin's own organization."""
    if visitor.role is not Role.ORGANIZATION_ADMIN:
        raise NotFound("page", "/organization")
    return redirect(f"/organizations/{visitor.login}")


def organization_page(
    visitor: Visitor, login: str, *, error: Refusal | None = None, typed: dict[str, str] | None = None
) -> Response:
    database, principal = visitor.database, visitor.principal
    view = organizations.get_organization(database, login=login, principal=principal)
    may_manage = Action.ORGANIZATION_MANAGE in principal.actions
    users = organizations.list_users(database, organization=login, limit=PAGE_SIZE, principal=principal)
    extensions = organizations.list_extensions(database, organization=login, limit=PAGE_SIZE, principal=principal)
    owner = view.node.id != principal.place.node_id and Action.NODE_UPDATE in principal.actions
    return render(
        visitor,
        "organization.html",
        status_code=_status(error),
        values={
            "view": view,
            "users": users,
            "extensions": extensions,
            **line_values(
                visitor, lines.get_line(database, login=login, principal=principal), f"/organizations/{login}"
            ),
            "may_manage": may_manage,
            "may_set_limits": owner,
            "may_verify": owner,
            "saved": _saved(visitor),
            "error": _error(visitor, error),
            "typed": typed or {},
            "roles": ROLES,
            "statuses": staff.STATUSES,
            "extension_statuses": EXTENSION_STATUSES,
            "wallets": WALLETS,
        },
    )


@router.get("/organizations/{login}")
def organization(visitor: SignedInDep, login: str) -> Response:
    return organization_page(visitor, login)


def _limit(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise Refusal("limit_invalid", f"{text!r} is not a whole number")
    return int(text)


@router.post("/organizations/{login}/limits")
def set_limits(
    visitor: SignedInDep, login: str, users: LimitField = "", extensions_per_user: LimitField = ""
) -> Response:
    try:
        limits = Limits(users=_limit(users), extensions_per_user=_limit(extensions_per_user))
        organizations.set_limits(visitor.database, login=login, limits=limits, principal=visitor.principal)
    except Refusal as refusal:
        typed = {"users": users, "extensions_per_user": extensions_per_user}
        return organization_page(visitor, login, error=refusal, typed=typed)
    return redirect(f"/organizations/{login}?saved=limits")


@router.post("/organizations/{login}/settings")
def configure(
    visitor: SignedInDep,
    login: str,
    wallet: Annotated[str, Form(max_length=16)] = "",
    extension_digits: Annotated[str, Form(max_length=2)] = "",
    sip_domain: Annotated[str, Form(max_length=253)] = "",
) -> Response:
    """Who pays for users' calls, the length of extension numbers (while there are none), the SIP domain."""
    try:
        try:
            chosen = Wallet(wallet) if wallet else None
            digits = int(extension_digits) if extension_digits.strip() else None
        except ValueError:
            raise Refusal("request_invalid", "choose who pays, and a number of digits") from None
        organizations.configure(
            visitor.database,
            login=login,
            wallet=chosen,
            extension_digits=digits,
            sip_domain=sip_domain.strip() or None,
            sealer=sealer_of(visitor),
            principal=visitor.principal,
        )
    except Refusal as refusal:
        if isinstance(refusal, NotFound):
            raise
        return organization_page(visitor, login, error=refusal)
    return redirect(f"/organizations/{login}?saved=settings")


def _role(text: str) -> OrganizationRole:
    try:
        return OrganizationRole(text or OrganizationRole.MEMBER)
    except ValueError:
        raise Refusal("request_invalid", f"{text!r} is not a role in an organization") from None


@router.post("/organizations/{login}/users")
def create_user(
    visitor: SignedInDep,
    login: str,
    user: Short = "",
    name: Text = "",
    email: Text = "",
    language: Annotated[str, Form(max_length=8)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        new = NewUser(
            login=user.strip(),
            name=name.strip(),
            email=email.strip() or None,
            language=language or None,
            role=_role(role),
        )
        organizations.create_user(visitor.database, organization=login, new=new, principal=visitor.principal)
    except Refusal as refusal:
        typed = {"user": user, "name": name, "email": email}
        return organization_page(visitor, login, error=refusal, typed=typed)
    return redirect(f"/organizations/{login}/users/{new.login}?saved=user_created")


# -- users ---------------------------------------------------------------------------------------------------


def user_page(visitor: Visitor, login: str, user: str, *, error: Refusal | None = None) -> Response:
    database, principal = visitor.database, visitor.principal
    view = organizations.get_user(database, organization=login, login=user, principal=principal)
    settings = organizations.get_organization(database, login=login, principal=principal).settings
    return render(
        visitor,
        "organization_user.html",
        status_code=_status(error),
        values={
            "organization": login,
            "user": view,
            "caps_apply": settings.wallet is Wallet.ORGANIZATION,
            "may_manage": Action.ORGANIZATION_MANAGE in principal.actions,
            "saved": _saved(visitor),
            "error": _error(visitor, error),
            "roles": ROLES,
            "statuses": staff.STATUSES,
            "extension_statuses": EXTENSION_STATUSES,
            "next_statuses": [s for s in (Status.ACTIVE, Status.SUSPENDED) if s is not view.node.status],
        },
    )


@router.get("/organizations/{login}/users/{user}")
def user_detail(visitor: SignedInDep, login: str, user: str) -> Response:
    return user_page(visitor, login, user)


def _cap(text: str, language: str) -> int | None:
    text = text.strip()
    return parse_amount(text, language) if text else None


@router.post("/organizations/{login}/users/{user}")
def update_user(
    visitor: SignedInDep,
    login: str,
    user: str,
    name: Text = "",
    email: Text = "",
    language: Annotated[str, Form(max_length=8)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    daily_cap: Annotated[str | None, Form(max_length=40)] = None,
    monthly_cap: Annotated[str | None, Form(max_length=40)] = None,
) -> Response:
    try:
        caps = None
        if daily_cap is not None or monthly_cap is not None:
            caps = Caps(_cap(daily_cap or "", visitor.language), _cap(monthly_cap or "", visitor.language))
        organizations.update_user(
            visitor.database,
            organization=login,
            login=user,
            name=name.strip() or None,
            email=email.strip() or None,
            language=language or None,
            role=_role(role) if role else None,
            caps=caps,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return user_page(visitor, login, user, error=refusal)
    return redirect(f"/organizations/{login}/users/{user}?saved=user")


@router.post("/organizations/{login}/users/{user}/status")
def set_user_status(
    visitor: SignedInDep, login: str, user: str, status: Annotated[str, Form(max_length=16)] = ""
) -> Response:
    try:
        if status not in (Status.ACTIVE, Status.SUSPENDED):
            raise Refusal("status_invalid", f"{status!r}: a user is active or suspended")
        organizations.update_user(
            visitor.database, organization=login, login=user, status=Status(status), principal=visitor.principal
        )
    except Refusal as refusal:
        return user_page(visitor, login, user, error=refusal)
    return redirect(f"/organizations/{login}/users/{user}?saved=status")


# -- extensions ----------------------------------------------------------------------------------------------


def _secret_page(visitor: Visitor, view: organizations.ExtensionView, secret: str, *, created: bool) -> Response:
    """The one page that shows an extension's SIP secret: the answer to its creation or rotation."""
    return render(visitor, "extension_secret.html", values={"extension": view, "secret": secret, "created": created})


@router.post("/organizations/{login}/extensions")
def create_extension(
    visitor: SignedInDep,
    login: str,
    user: Short = "",
    number: Annotated[str, Form(max_length=6)] = "",
    sip_username: Short = "",
    voicemail: Annotated[str, Form(max_length=3)] = "",
    recording: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    new = NewExtension(
        user=user.strip(),
        number=number.strip(),
        sip_username=sip_username.strip() or None,
        voicemail=voicemail == "on",
        recording=recording == "on",
    )
    try:
        view, secret = organizations.create_extension(
            visitor.database, organization=login, new=new, sealer=sealer_of(visitor), principal=visitor.principal
        )
    except Refusal as refusal:
        typed = {"extension_user": user, "number": number, "sip_username": sip_username}
        return organization_page(visitor, login, error=refusal, typed=typed)
    return _secret_page(visitor, view, secret, created=True)


def extension_page(visitor: Visitor, login: str, number: str, *, error: Refusal | None = None) -> Response:
    database, principal = visitor.database, visitor.principal
    view = organizations.get_extension(database, organization=login, number=number, principal=principal)
    line = lines.get_line(database, login=login, extension=number, principal=principal)
    return render(
        visitor,
        "extension.html",
        status_code=_status(error),
        values={
            "extension": view,
            "may_manage": Action.ORGANIZATION_MANAGE in principal.actions,
            "saved": _saved(visitor),
            "error": _error(visitor, error),
            "extension_statuses": EXTENSION_STATUSES,
            **line_values(visitor, line, f"/organizations/{login}/extensions/{number}"),
        },
    )


@router.get("/organizations/{login}/extensions/{number}")
def extension(visitor: SignedInDep, login: str, number: str) -> Response:
    return extension_page(visitor, login, number)


@router.post("/organizations/{login}/extensions/{number}")
def update_extension(
    visitor: SignedInDep,
    login: str,
    number: str,
    voicemail: Annotated[str, Form(max_length=3)] = "",
    recording: Annotated[str, Form(max_length=3)] = "",
    status: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        try:
            chosen = ExtensionStatus(status) if status else None
        except ValueError:
            raise Refusal("status_invalid", f"{status!r}: an extension is active or disabled") from None
        organizations.update_extension(
            visitor.database,
            organization=login,
            number=number,
            voicemail=voicemail == "on",
            recording=recording == "on",
            status=chosen,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return extension_page(visitor, login, number, error=refusal)
    return redirect(f"/organizations/{login}/extensions/{number}?saved=extension")


@router.post("/organizations/{login}/extensions/{number}/secret")
def rotate_secret(visitor: SignedInDep, login: str, number: str) -> Response:
    try:
        view, secret = organizations.rotate_secret(
            visitor.database, organization=login, number=number, sealer=sealer_of(visitor), principal=visitor.principal
        )
    except Refusal as refusal:
        if isinstance(refusal, NotFound):
            raise
        return extension_page(visitor, login, number, error=refusal)
    return _secret_page(visitor, view, secret, created=False)


@router.post("/organizations/{login}/extensions/{number}/delete")
def delete_extension(visitor: SignedInDep, login: str, number: str) -> Response:
    """The extension goes, with its caller ids and FollowMe; its number is free again."""
    try:
        organizations.delete_extension(visitor.database, organization=login, number=number, principal=visitor.principal)
    except Refusal as refusal:
        if isinstance(refusal, NotFound):
            raise
        return extension_page(visitor, login, number, error=refusal)
    return redirect(f"/organizations/{login}?saved=extension_deleted")


# -- a user's own extensions ---------------------------------------------------------------------------------


@router.get("/extensions")
def own_extensions(visitor: SignedInDep) -> Response:
    if visitor.role is not Role.ORGANIZATION_USER:
        raise NotFound("page", "/extensions")
    found = organizations.extensions_of_user(visitor.database, login=visitor.login, principal=visitor.principal)
    return render(visitor, "extensions.html", values={"extensions": found, "extension_statuses": EXTENSION_STATUSES})
