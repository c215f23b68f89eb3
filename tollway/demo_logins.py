"""The demo's logins: one per role, with passwords for development only, and a switch with its API key.

The passwords are fixed and published (README, ``tollway demo``'s output), so that a newcomer can log in
at once and a rerun prints the same logins: they must never guard real money. ``tollway demo`` therefore
refuses a PostgreSQL database (where production runs) unless told ``--dev``, and says "development only"
above them. A rerun leaves existing logins as they are and gives the demo switch a new API key (its old
one is revoked): a key is stored hashed, so the demo cannot print the old one again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tollway.access import service as access
from tollway.access import store as access_store
from tollway.access.model import Role
from tollway.calls import service as calls
from tollway.demo import PROVIDER_LOGIN
from tollway.errors import Refusal
from tollway.organizations import service as organizations
from tollway.organizations.service import NewUser
from tollway.store.database import Database

DEMO_PASSWORD_SUFFIX = ".demo"  # noqa: S105 (development only, and published)
DEMO_SWITCH = "demo-switch"


@dataclass(frozen=True)
class DemoLogin:
    role_label: str  # the role as a person says it, with the reseller's level
    login: str
    role: Role
    node: str
    organization: str | None = None  # an organization user: its account ``node`` is made in it first

    @property
    def password(self) -> str:
        """Development only: derived from the login, published in the README."""
        return f"{self.login}{DEMO_PASSWORD_SUFFIX}"


DEMO_LOGINS = (
    DemoLogin("provider admin", "house-admin", Role.PROVIDER_ADMIN, PROVIDER_LOGIN),
    DemoLogin("reseller admin, level 3", "atlas-admin", Role.RESELLER_ADMIN, "atlas"),
    DemoLogin("reseller admin, level 2", "atlas-north-admin", Role.RESELLER_ADMIN, "atlas-north"),
    DemoLogin("reseller admin, level 1", "north-city-admin", Role.RESELLER_ADMIN, "north-city"),
    DemoLogin("agent", "agent-ana", Role.AGENT, "agent-ana"),
    DemoLogin("client", "alice", Role.CLIENT, "alice"),
    DemoLogin("organization admin", "acme-admin", Role.ORGANIZATION_ADMIN, "acme-pbx"),
    DemoLogin("organization user", "acme-reception", Role.ORGANIZATION_USER, "acme-reception", "acme-pbx"),
)


@dataclass(frozen=True)
class DemoAccess:
    logins: tuple[DemoLogin, ...]
    switch: str
    switch_node: str
    switch_api_key: str  # plaintext, shown once


def load_logins(database: Database) -> DemoAccess:
    """Make the demo's logins (those missing) and its switch, or give the switch a new key; after ``load_demo``."""
    with database.reading() as connection:  # a rerun skips them before hashing a password (slow on purpose)
        made = {d.login for d in DEMO_LOGINS if access_store.find_user(connection, d.login) is not None}
    for demo_login in DEMO_LOGINS:
        if demo_login.login in made:
            continue
        if demo_login.organization is not None:
            with _unless_made():
                new = NewUser(demo_login.node, demo_login.role_label.capitalize())
                organizations.create_user(database, organization=demo_login.organization, new=new)
        with _unless_made():
            access.create_user(
                database,
                None,
                node_login=demo_login.node,
                login=demo_login.login,
                password=demo_login.password,
                role=demo_login.role,
            )
    try:
        _, api_key = calls.create_switch(database, name=DEMO_SWITCH, node_login=PROVIDER_LOGIN)
    except Refusal as refusal:
        if refusal.reason != "switch_exists":
            raise
        api_key = calls.rotate_switch_key(database, name=DEMO_SWITCH)
    return DemoAccess(DEMO_LOGINS, DEMO_SWITCH, PROVIDER_LOGIN, api_key)


@contextmanager
def _unless_made() -> Iterator[None]:
    """Make something the demo needs, unless an earlier run made it (its login is taken)."""
    try:
        yield
    except Refusal as refusal:
        if refusal.reason != "login_taken":
            raise
