"""Use cases of brands: which brand a visitor sees, a reseller's settings, its host names, its logo.

Who may change what: a reseller (or the provider) sets its own name, colours, logo, support contact and
its customers' default language (``brand:write``, its owners too); its host names claim a domain and are
set by its owners only (``node:update``), as its sender address is (tollway/notifications).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, Role, authorize
from tollway.branding import model
from tollway.branding import store as brand_store
from tollway.branding.model import KEEP, Brand, BrandRow, Keep, Logo
from tollway.clock import utc_now
from tollway.errors import Refusal, present
from tollway.notifications.model import check_brand_name, check_email
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Feature, Node, NodeKind, check_feature_granted, check_language
from tollway.tree.service import require_node


@dataclass(frozen=True, slots=True)
class BrandSettings:
    """A node's own brand as its owner or admin edits it: what it set, what its customers see, its hosts."""

    login: str
    brand_name: str | None
    row: BrandRow
    shown: Brand
    hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BrandChanges:
    """What to change: a field left at KEEP stays as it is; None clears it."""

    name: str | Keep | None = KEEP
    colour_primary: str | Keep | None = KEEP
    colour_accent: str | Keep | None = KEEP
    support_email: str | Keep | None = KEEP
    support_phone: str | Keep | None = KEEP
    support_url: str | Keep | None = KEEP
    customer_language: str | Keep | None = KEEP
    logo: bytes | Keep | None = KEEP

    def columns(self) -> dict[str, Any]:
        """The brands columns to write, checked (the name is the node's ``brand_name``, written apart)."""
        checks: dict[str, Callable[[str], str]] = {
            "colour_primary": model.check_primary,
            "colour_accent": model.check_accent,
            "support_email": check_email,
            "support_phone": model.check_support_phone,
            "support_url": model.check_support_url,
            "customer_language": check_language,
        }
        found: dict[str, Any] = {}
        for name, check in checks.items():
            value = getattr(self, name)
            if value is not KEEP:
                found[name] = None if value is None else check(value)
        if self.logo is not KEEP:
            found |= _logo_columns(self.logo)
        return found


def _logo_columns(content: bytes | None) -> dict[str, Any]:
    if content is None:
        return {"logo": None, "logo_type": None, "logo_digest": None}
    media_type = model.logo_media_type(content)
    return {"logo": content, "logo_type": media_type, "logo_digest": hashlib.sha256(content).hexdigest()}


def _brand(connection: Connection, node_id: int) -> Brand:
    node = present(brand_store.branded_node(connection, node_id), f"node {node_id}")
    return model.brand_of(
        node_id=node.node_id,
        node_name=node.name,
        brand_name=node.brand_name,
        language=node.language,
        row=brand_store.get_row(connection, node_id),
    )


def _provider_brand(connection: Connection) -> Brand:
    return _brand(connection, present(tree_store.find_provider(connection), "the provider").id)


def brand_for_host(database: Database, *, host: str | None) -> Brand:
    """The brand of the node whose host name this is; the provider's for any other host."""
    with database.reading() as connection:
        node_id = brand_store.node_for_host(connection, host) if host else None
        return _brand(connection, node_id) if node_id is not None else _provider_brand(connection)


def brand_seen_by(database: Database, principal: Principal) -> Brand:
    """The brand a login sees: its owner's (the node that sells to it); the provider's for the provider's admins."""
    with database.reading() as connection:
        if principal.role is Role.PROVIDER_ADMIN or principal.place.parent_id is None:
            return _provider_brand(connection)
        return _brand(connection, principal.place.parent_id)


def _brands_others(node: Node) -> None:
    """Only the provider and a reseller whose grants hold ``branded_portal`` set a brand for their customers."""
    if node.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
        raise Refusal("brand_for_resellers_only", "only resellers and the provider have a brand for their customers")
    check_feature_granted(node.grants, Feature.BRANDED_PORTAL)


def _settings(connection: Connection, node: Node) -> BrandSettings:
    named = present(brand_store.branded_node(connection, node.id), f"node {node.login}")
    return BrandSettings(
        login=node.login,
        brand_name=named.brand_name,
        row=brand_store.get_row(connection, node.id) or BrandRow(node.id),
        shown=_brand(connection, node.id),
        hosts=brand_store.hosts_of(connection, node.id),
    )


def get_brand(database: Database, principal: Principal | None, *, login: str) -> BrandSettings:
    """A node's own brand settings: for itself and its owners, never for its customers (who see ``shown``)."""
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.BRAND_WRITE, node)
        return _settings(connection, node)


def _summary(settings: BrandSettings) -> dict[str, object]:
    """What the audit log records of a brand (the logo by its digest)."""
    row = settings.row
    return {
        "brand_name": settings.brand_name,
        "colour_primary": row.colour_primary,
        "colour_accent": row.colour_accent,
        "support_email": row.support_email,
        "support_phone": row.support_phone,
        "support_url": row.support_url,
        "customer_language": row.customer_language,
        "logo_digest": row.logo_digest,
        "hosts": settings.hosts,
    }


def set_brand(database: Database, principal: Principal | None, *, login: str, changes: BrandChanges) -> BrandSettings:
    columns = changes.columns()  # checked before the transaction: a bad logo costs no lock
    name = changes.name if changes.name is KEEP or changes.name is None else check_brand_name(changes.name)
    if not columns and name is KEEP:
        raise Refusal("nothing_to_change", "say what to set: name, colours, logo, support contact, language")
    now = utc_now()

    def use_case(connection: Connection) -> BrandSettings:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.BRAND_WRITE, node)
        _brands_others(node)
        before = _settings(connection, node)
        if name is not KEEP:
            tree_store.update_node(connection, node.id, now=now, brand_name=name)
        if columns:
            brand_store.save_row(connection, node.id, now=now, **columns)
        after = _settings(connection, node)
        audit(
            connection,
            principal,
            action="node.brand",
            target_type="node",
            target_id=node.login,
            node=node,
            before=_summary(before),
            after=_summary(after),
        )
        return after

    return database.run(use_case)


def set_hosts(database: Database, principal: Principal | None, *, login: str, hosts: Sequence[str]) -> BrandSettings:
    """Replace the host names on which a reseller's portal shows its brand (its owners set them)."""
    checked = sorted({model.check_host(host) for host in hosts})
    if len(checked) > model.HOSTS_PER_BRAND_MAX:
        raise Refusal("too_many_hosts", f"a brand has at most {model.HOSTS_PER_BRAND_MAX} host names")
    now = utc_now()

    def use_case(connection: Connection) -> BrandSettings:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        _brands_others(node)
        before = _settings(connection, node)
        brand_store.replace_hosts(connection, node.id, checked, now=now)
        after = _settings(connection, node)
        audit(
            connection,
            principal,
            action="node.brand_hosts",
            target_type="node",
            target_id=node.login,
            node=node,
            before={"hosts": before.hosts},
            after={"hosts": after.hosts},
        )
        return after

    return database.run(use_case)


def logo(database: Database, *, digest: str) -> Logo | None:
    """A logo by its digest: public, as every login page shows one."""
    with database.reading() as connection:
        return brand_store.find_logo(connection, digest)
