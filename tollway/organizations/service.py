"""Use cases of organizations: settings and limits, users, extensions and their SIP secrets.

Each runs in one transaction. Who may do what is ``access.model``'s one rule:
- an organization's settings, users and extensions: ``organization:manage`` on the organization (its
  admins, and the resellers and provider above it);
- its limits: ``node:update``, an owner's action (its reseller; never the organization itself);
- reading a user or an extension: ``node:read`` on the user's account (the user itself too).
Whoever may not see an organization, a user or an extension gets ``*_not_found``, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from tollway.access import credentials
from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.lines import store as lines_store
from tollway.lines.model import LineRef
from tollway.organizations import model, spending, store
from tollway.organizations.model import (
    Caps,
    Extension,
    ExtensionStatus,
    Limits,
    OrganizationRole,
    Settings,
    Wallet,
)
from tollway.organizations.store import Member
from tollway.rating import store as rating_store
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.store.schema import nodes
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Node, NodeKind, Status, client

EMAIL_LENGTH_MAX = 254
NO_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class OrganizationView:
    node: Node
    settings: Settings
    limits: Limits  # set on the organization itself
    limits_in_force: Limits  # the narrowest of its own and every owner's above it
    users: int  # not closed
    extensions: int


@dataclass(frozen=True, slots=True)
class UserView:
    node: Node  # the user's account: login, name, language, status, currency
    organization: str
    role: OrganizationRole
    email: str | None
    caps: Caps
    extensions: list[str]  # its extension numbers


@dataclass(frozen=True, slots=True)
class ExtensionView:
    organization: str
    user: str  # the login of the user it belongs to
    number: str
    sip_username: str
    sip_domain: str
    voicemail: bool
    recording: bool
    status: ExtensionStatus


@dataclass(frozen=True, slots=True)
class NewUser:
    login: str
    name: str
    email: str | None = None
    language: str | None = None  # default: the organization's
    role: OrganizationRole = OrganizationRole.MEMBER
    caps: Caps = NO_CAPS


@dataclass(frozen=True, slots=True)
class NewExtension:
    user: str  # the login of its user
    number: str
    sip_username: str | None = None  # default: the number
    voicemail: bool = False
    recording: bool = False


# -- finding and checking -------------------------------------------------------------------------


def require_organization(
    connection: Connection, principal: Principal | None, login: str, action: Action, *, lock: bool = False
) -> tuple[Node, Settings]:
    """The organization ``login`` with its settings (the defaults if it has none yet), if the principal may
    do ``action`` on it; an account that is not a pbx client is no organization (``organization_not_found``)."""
    node = tree_store.find_node(connection, login, lock=lock)
    if node is None or node.position.client_type is not ClientType.PBX:
        raise NotFound("organization", login)
    try:
        authorize(principal, action, node)
    except NotFound:
        raise NotFound("organization", login) from None
    settings = store.get_settings(connection, node.id, lock=lock)
    if settings is None:
        settings = Settings(Wallet.USER, model.EXTENSION_DIGITS_DEFAULT, model.sip_domain_for(node.login))
    return node, settings


def _ensure_settings(connection: Connection, node: Node, settings: Settings, now: datetime) -> None:
    """An organization's settings are stored on first use, so its SIP domain is then its own."""
    if store.get_settings(connection, node.id) is None:
        if store.domain_taken(connection, settings.sip_domain, other_than=node.id):
            raise Refusal("sip_domain_taken", f"set a SIP domain for {node.login}: {settings.sip_domain} is taken")
        store.put_settings(connection, node.id, settings, now=now)


def _user(
    connection: Connection, principal: Principal | None, organization: Node, login: str, action: Action
) -> tuple[Node, Member]:
    node = tree_store.find_node(connection, login)
    member = store.get_member(connection, node.id) if node is not None else None
    if node is None or member is None or member.organization_id != organization.id:
        raise NotFound("user", login)
    try:
        authorize(principal, action, node)
    except NotFound:
        raise NotFound("user", login) from None
    return node, member


def _extension(connection: Connection, organization: Node, number: str, *, lock: bool = False) -> Extension:
    found = store.find_extension(connection, organization.id, number, lock=lock) if "\x00" not in number else None
    if found is None:
        raise NotFound("extension", f"{organization.login}/{number}")
    return found


def limits_above(connection: Connection, node: Node) -> Limits:
    """The narrowest limits the owners above ``node`` set (not counting its own)."""
    ancestors = node.ancestor_ids
    found = store.limits_of(connection, ancestors)
    return model.narrowest([found[i] for i in ancestors if i in found])


def limits_in_force(connection: Connection, node: Node) -> Limits:
    found = store.limits_of(connection, [*node.ancestor_ids, node.id])
    return model.narrowest(list(found.values()))


# -- organizations --------------------------------------------------------------------------------


def get_organization(database: Database, *, login: str, principal: Principal | None = None) -> OrganizationView:
    with database.reading() as connection:
        node, settings = require_organization(connection, principal, login, Action.NODE_READ)
        return _organization_view(connection, node, settings)


def _organization_view(connection: Connection, node: Node, settings: Settings) -> OrganizationView:
    return OrganizationView(
        node=node,
        settings=settings,
        limits=store.limits_of(connection, [node.id]).get(node.id, model.NO_LIMITS),
        limits_in_force=limits_in_force(connection, node),
        users=store.count_open_members(connection, node.id),
        extensions=store.count_extensions(connection, node.id),
    )


def configure(
    database: Database,
    *,
    login: str,
    wallet: Wallet | None = None,
    extension_digits: int | None = None,
    sip_domain: str | None = None,
    sealer: Sealer | None = None,
    principal: Principal | None = None,
) -> OrganizationView:
    """Change who pays for users' calls, the length of extension numbers (while there are no extensions)
    or the SIP domain (every extension's digest HA1 is recomputed for the new realm: needs ``sealer``)."""
    now = utc_now()

    def use_case(connection: Connection) -> OrganizationView:
        node, before = require_organization(connection, principal, login, Action.ORGANIZATION_MANAGE, lock=True)
        after = Settings(
            wallet=wallet or before.wallet,
            extension_digits=model.check_extension_digits(extension_digits or before.extension_digits),
            sip_domain=model.check_sip_domain(sip_domain) if sip_domain is not None else before.sip_domain,
        )
        existing = store.extensions_of(connection, node.id, limit=store.PAGE_SIZE_MAX)
        if after.extension_digits != before.extension_digits and existing:
            raise Refusal("extensions_exist", "extension numbers keep their length while there are extensions")
        if store.domain_taken(connection, after.sip_domain, other_than=node.id):
            raise Refusal("sip_domain_taken", f"{after.sip_domain} is another organization's SIP domain")
        if after.sip_domain != before.sip_domain and existing:
            _rehash(connection, node, after.sip_domain, present(sealer, "the sealer, to read SIP secrets"), now)
        store.put_settings(connection, node.id, after, now=now)
        audit(
            connection,
            principal,
            action="organization.configure",
            target_type="node",
            target_id=node.login,
            node=node,
            before=_settings_summary(before),
            after=_settings_summary(after),
        )
        return _organization_view(connection, node, after)

    return database.run(use_case)


def _settings_summary(settings: Settings) -> dict[str, object]:
    return {
        "wallet": str(settings.wallet),
        "extension_digits": settings.extension_digits,
        "sip_domain": settings.sip_domain,
    }


def _rehash(connection: Connection, node: Node, realm: str, sealer: Sealer, now: datetime) -> None:
    after = ""
    while batch := store.extensions_of(connection, node.id, limit=store.PAGE_SIZE_MAX, after=after):
        for extension in batch:
            secret = sealer.unseal(extension.secret_sealed)
            ha1 = model.digest_ha1(extension.sip_username, realm, secret)
            store.update_extension(connection, extension.id, now=now, ha1=ha1)
        after = batch[-1].number


def set_limits(database: Database, *, login: str, limits: Limits, principal: Principal | None = None) -> Limits:
    """An owner limits an organization (or, on a reseller, every organization below it): users, and extensions
    per user. Never wider than what the owners above allow."""
    model.check_limits(limits)
    now = utc_now()

    def use_case(connection: Connection) -> Limits:
        node = tree.require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        is_organization = node.position.client_type is ClientType.PBX
        if node.position.kind is not NodeKind.RESELLER and not is_organization:
            raise Refusal("limits_not_applicable", "organization limits are set on organizations and resellers")
        model.check_within(limits, limits_above(connection, node))
        before = store.limits_of(connection, [node.id]).get(node.id, model.NO_LIMITS)
        store.put_limits(connection, node.id, limits, now=now)
        audit(
            connection,
            principal,
            action="organization.limits",
            target_type="node",
            target_id=node.login,
            node=node,
            before={"users": before.users, "extensions_per_user": before.extensions_per_user},
            after={"users": limits.users, "extensions_per_user": limits.extensions_per_user},
        )
        return limits

    return database.run(use_case)


# -- users ----------------------------------------------------------------------------------------


def create_user(database: Database, *, organization: str, new: NewUser, principal: Principal | None = None) -> UserView:
    """A user of the organization, with its own account below it (paying at the organization's tariff)."""
    model.check_caps(new.caps)
    email = check_email(new.email)
    now = utc_now()

    def use_case(connection: Connection) -> UserView:
        return create_user_in(connection, organization=organization, new=new, email=email, now=now, principal=principal)

    return database.run(use_case)


def create_user_in(
    connection: Connection,
    *,
    organization: str,
    new: NewUser,
    email: str | None,
    now: datetime,
    principal: Principal | None,
) -> UserView:
    # The organization's row is locked first: two creations racing for the last place under its limit queue.
    org, settings = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE, lock=True)
    _ensure_settings(connection, org, settings, now)
    model.check_users_room(limits_in_force(connection, org), store.count_open_members(connection, org.id))
    account = tree.create_node_in(
        connection,
        owner_login=org.login,
        new=tree.NewNode(client(ClientType.USER), login=new.login, name=new.name),
        now=now,
        principal=principal,
        organization_user=True,
    )
    # A user's language and email are the organization's to set (organization:manage), as update_user does.
    details: dict[str, str] = {"email": email} if email is not None else {}
    if new.language is not None:
        details["language"] = tree_model.check_language(new.language)
    if details:
        tree_store.update_node(connection, account.id, now=now, **details)
        account = present(tree_store.get_node(connection, account.id), f"user {account.login}")
    store.insert_member(connection, node_id=account.id, organization_id=org.id, role=new.role, caps=new.caps, now=now)
    tariff_id = rating_store.assigned_tariff_ids(connection, [org.id]).get(org.id)
    if tariff_id is not None:
        rating_store.assign(connection, node_id=account.id, tariff_id=tariff_id, now=now)
    audit(
        connection,
        principal,
        action="organization.user.create",
        target_type="node",
        target_id=account.login,
        node=account,
        after={
            "role": str(new.role),
            "daily_cap_micros": new.caps.day_micros,
            "monthly_cap_micros": new.caps.month_micros,
        },
    )
    return UserView(account, org.login, new.role, email, new.caps, [])


def check_email(email: str | None) -> str | None:
    if email is None:
        return None
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > EMAIL_LENGTH_MAX or any(c.isspace() for c in email):
        raise Refusal("email_invalid", f"{email!r} is not an email address")
    if "\x00" in email or any(ord(c) < 32 for c in email):
        raise Refusal("email_invalid", "an email address has no control characters")
    return email


def _email_of(connection: Connection, node_id: int) -> str | None:
    email: str | None = connection.execute(select(nodes.c.email).where(nodes.c.id == node_id)).scalar_one_or_none()
    return email


def _user_view(connection: Connection, node: Node, member: Member, organization: str) -> UserView:
    numbers = [e.number for e in store.extensions_of(connection, member.organization_id, user_node_id=node.id)]
    return UserView(node, organization, member.role, _email_of(connection, node.id), member.caps, numbers)


def get_user(database: Database, *, organization: str, login: str, principal: Principal | None = None) -> UserView:
    with database.reading() as connection:
        org, _ = require_organization(connection, None, organization, Action.NODE_READ)
        node, member = _user(connection, principal, org, login, Action.NODE_READ)
        return _user_view(connection, node, member, org.login)


def list_users(
    database: Database, *, organization: str, limit: int, after_id: int = 0, principal: Principal | None = None
) -> list[UserView]:
    with database.reading() as connection:
        org, _ = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
        ids = store.page_members(connection, org.id, limit=limit, after_id=after_id)
        members = store.members_of(connection, ids)
        return [
            _user_view(connection, present(tree_store.get_node(connection, i), f"user {i}"), members[i], org.login)
            for i in ids
        ]


def update_user(
    database: Database,
    *,
    organization: str,
    login: str,
    name: str | None = None,
    email: str | None = None,
    language: str | None = None,
    role: OrganizationRole | None = None,
    caps: Caps | None = None,
    status: Status | None = None,
    principal: Principal | None = None,
) -> UserView:
    """Change a user's name, email, language, role, spending caps (``caps`` replaces both) or status: its
    organization suspends it (its extensions stop registering and calling) and activates it again; closing
    is its owners' (as for any account: nothing left in its wallet)."""
    checked_email = check_email(email)
    if caps is not None:
        model.check_caps(caps)
    now = utc_now()

    def use_case(connection: Connection) -> UserView:
        org, _ = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
        node, _ = _user(connection, principal, org, login, Action.NODE_READ)
        locked = present(store.get_member(connection, node.id, lock=True), f"user {login}")
        if status is not None and status is not node.status:
            if status is Status.CLOSED:
                authorize(principal, Action.NODE_UPDATE, node)
            node = tree.apply_status(
                connection,
                present(tree_store.find_node(connection, login, lock=True), login),
                status,
                now=now,
                principal=principal,
            )
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = tree_model.check_name(name)
        if language is not None:
            changes["language"] = tree_model.check_language(language)
        if checked_email is not None:
            changes["email"] = checked_email
        if changes:
            tree_store.update_node(connection, node.id, now=now, **changes)
        if role is not None or caps is not None:
            new_caps = caps if caps is not None else locked.caps
            store.update_member(
                connection,
                node.id,
                now=now,
                role=str(role or locked.role),
                daily_cap_micros=new_caps.day_micros,
                monthly_cap_micros=new_caps.month_micros,
            )
            spending.apply_caps(connection, node, new_caps)
        audit(
            connection,
            principal,
            action="organization.user.update",
            target_type="node",
            target_id=node.login,
            node=node,
            after={k: str(v) for k, v in changes.items()} | {"role": str(role or locked.role)},
        )
        updated = present(tree_store.get_node(connection, node.id), f"user {login}")
        return _user_view(connection, updated, present(store.get_member(connection, node.id), "user"), org.login)

    return database.run(use_case)


# -- extensions -----------------------------------------------------------------------------------


def _extension_view(connection: Connection, organization: Node, settings: Settings, found: Extension) -> ExtensionView:
    user = present(tree_store.get_node(connection, found.user_node_id), f"user of extension {found.id}")
    return ExtensionView(
        organization=organization.login,
        user=user.login,
        number=found.number,
        sip_username=found.sip_username,
        sip_domain=settings.sip_domain,
        voicemail=found.voicemail,
        recording=found.recording,
        status=found.status,
    )


def create_extension(
    database: Database, *, organization: str, new: NewExtension, sealer: Sealer, principal: Principal | None = None
) -> tuple[ExtensionView, str]:
    """An extension for one of the organization's users, with a SIP secret generated now and shown only in
    this answer: (the extension, the secret)."""
    secret = credentials.generate_secret(model.SIP_SECRET_LENGTH)
    now = utc_now()

    def use_case(connection: Connection) -> ExtensionView:
        return create_extension_in(
            connection, organization=organization, new=new, secret=secret, sealer=sealer, now=now, principal=principal
        )

    return database.run(use_case), secret


def create_extension_in(
    connection: Connection,
    *,
    organization: str,
    new: NewExtension,
    secret: str,
    sealer: Sealer,
    now: datetime,
    principal: Principal | None,
) -> ExtensionView:
    org, settings = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE, lock=True)
    _ensure_settings(connection, org, settings, now)
    user, _ = _user(connection, principal, org, new.user, Action.NODE_READ)
    number = model.check_extension_number(new.number, settings.extension_digits)
    username = model.check_sip_username(new.sip_username or number)
    if store.find_extension(connection, org.id, number) is not None:
        raise Refusal("extension_number_taken", f"{org.login} has an extension {number} already")
    if store.username_taken(connection, org.id, username):
        raise Refusal("sip_username_taken", f"{username} is another extension's SIP username in {org.login}")
    room = store.count_extensions_of_user(connection, user.id)
    model.check_extensions_room(limits_in_force(connection, org), room)
    try:
        created = store.insert_extension(
            connection,
            now=now,
            organization_id=org.id,
            user_node_id=user.id,
            number=number,
            sip_username=username,
            ha1=model.digest_ha1(username, settings.sip_domain, secret),
            secret_sealed=sealer.seal(secret),
            voicemail=new.voicemail,
            recording=new.recording,
            status=str(ExtensionStatus.ACTIVE),
        )
    except IntegrityError:
        raise Refusal("extension_number_taken", f"{org.login} has an extension {number} already") from None
    audit(
        connection,
        principal,
        action="organization.extension.create",
        target_type="extension",
        target_id=f"{org.login}/{number}",
        node=user,
        after={"user": user.login, "sip_username": username, "voicemail": new.voicemail, "recording": new.recording},
    )
    return _extension_view(connection, org, settings, created)


def rotate_secret(
    database: Database, *, organization: str, number: str, sealer: Sealer, principal: Principal | None = None
) -> tuple[ExtensionView, str]:
    """A new SIP secret for the extension, shown only in this answer; the old one stops working at once."""
    secret = credentials.generate_secret(model.SIP_SECRET_LENGTH)
    now = utc_now()

    def use_case(connection: Connection) -> ExtensionView:
        org, settings = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
        found = _extension(connection, org, number, lock=True)
        ha1 = model.digest_ha1(found.sip_username, settings.sip_domain, secret)
        store.update_extension(
            connection, found.id, now=now, ha1=ha1, secret_sealed=sealer.seal(secret), secret_changed_at=now
        )
        user = present(tree_store.get_node(connection, found.user_node_id), "user")
        audit(
            connection,
            principal,
            action="organization.extension.rotate",
            target_type="extension",
            target_id=f"{org.login}/{number}",
            node=user,
        )
        return _extension_view(connection, org, settings, found)

    return database.run(use_case), secret


def update_extension(
    database: Database,
    *,
    organization: str,
    number: str,
    voicemail: bool | None = None,
    recording: bool | None = None,
    status: ExtensionStatus | None = None,
    principal: Principal | None = None,
) -> ExtensionView:
    now = utc_now()

    def use_case(connection: Connection) -> ExtensionView:
        org, settings = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
        found = _extension(connection, org, number, lock=True)
        changed = replace(
            found,
            voicemail=found.voicemail if voicemail is None else voicemail,
            recording=found.recording if recording is None else recording,
            status=status or found.status,
        )
        store.update_extension(
            connection,
            found.id,
            now=now,
            voicemail=changed.voicemail,
            recording=changed.recording,
            status=str(changed.status),
        )
        user = present(tree_store.get_node(connection, found.user_node_id), "user")
        audit(
            connection,
            principal,
            action="organization.extension.update",
            target_type="extension",
            target_id=f"{org.login}/{number}",
            node=user,
            before={"voicemail": found.voicemail, "recording": found.recording, "status": str(found.status)},
            after={"voicemail": changed.voicemail, "recording": changed.recording, "status": str(changed.status)},
        )
        return _extension_view(connection, org, settings, changed)

    return database.run(use_case)


def delete_extension(database: Database, *, organization: str, number: str, principal: Principal | None = None) -> None:
    """The extension and its caller ids and FollowMe go; its number is free again."""

    def use_case(connection: Connection) -> None:
        org, _ = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
        found = _extension(connection, org, number, lock=True)
        lines_store.delete_line(connection, LineRef(org.id, found.id))
        store.delete_extension(connection, found.id)
        user = present(tree_store.get_node(connection, found.user_node_id), "user")
        audit(
            connection,
            principal,
            action="organization.extension.delete",
            target_type="extension",
            target_id=f"{org.login}/{number}",
            node=user,
            before={"user": user.login, "sip_username": found.sip_username},
        )

    database.run(use_case)


def get_extension(
    database: Database, *, organization: str, number: str, principal: Principal | None = None
) -> ExtensionView:
    """One extension, for whoever sees its user (its user, the organization's admins, the owners above)."""
    with database.reading() as connection:
        org, settings = require_organization(connection, None, organization, Action.NODE_READ)
        try:
            found = _extension(connection, org, number)
            authorize(principal, Action.NODE_READ, present(tree_store.get_node(connection, found.user_node_id), "user"))
        except NotFound:
            raise NotFound("extension", f"{organization}/{number}") from None
        return _extension_view(connection, org, settings, found)


def list_extensions(
    database: Database,
    *,
    organization: str,
    user: str | None = None,
    limit: int = store.PAGE_SIZE_MAX,
    after: str = "",
    principal: Principal | None = None,
) -> list[ExtensionView]:
    """The organization's extensions by number, or one user's (which that user may list itself)."""
    with database.reading() as connection:
        if user is None:
            org, settings = require_organization(connection, principal, organization, Action.ORGANIZATION_MANAGE)
            found = store.extensions_of(connection, org.id, limit=limit, after=after)
        else:
            try:
                org, settings = require_organization(connection, None, organization, Action.NODE_READ)
                node, _ = _user(connection, principal, org, user, Action.NODE_READ)
            except NotFound:
                raise NotFound("user", user) from None
            found = store.extensions_of(connection, org.id, user_node_id=node.id, limit=limit, after=after)
        return [_extension_view(connection, org, settings, extension) for extension in found]


def extensions_of_user(database: Database, *, login: str, principal: Principal | None = None) -> list[ExtensionView]:
    """The extensions of the user ``login`` (whoever sees its account: the user itself, its organization's
    admins, the owners above), without naming its organization: a user's portal lists its own this way."""
    with database.reading() as connection:
        node = tree_store.find_node(connection, login)
        member = store.get_member(connection, node.id) if node is not None else None
        if node is None or member is None:
            raise NotFound("user", login)
        try:
            authorize(principal, Action.NODE_READ, node)
        except NotFound:
            raise NotFound("user", login) from None
        organization = present(tree_store.get_node(connection, member.organization_id), f"organization of {login}")
        _, settings = require_organization(connection, None, organization.login, Action.NODE_READ)
        found = store.extensions_of(connection, organization.id, user_node_id=node.id, limit=store.PAGE_SIZE_MAX)
        return [_extension_view(connection, organization, settings, extension) for extension in found]
