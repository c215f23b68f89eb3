"""The calls world (tests/calls_world.py) with two organizations under north-city, for organization scenarios.

house -> atlas (L3) -> atlas-north (L2) -> north-city (L1) -> alice, bob (retail clients)
                                                           -> acme, globex (organizations: pbx clients)
Each organization pays north-city at north-city:retail (0.10 a minute to the UK, per second), as alice does.
"""

from __future__ import annotations

from tests.calls_world import build_world, micros
from tollway.access.model import ROLE_ACTIONS, Principal, Role, place_of
from tollway.balances import service as balances
from tollway.rating import service as rating
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, client

SEALER = Sealer(Sealer.new_key())


def build_organizations(
    database: Database,
    *,
    balances_of: dict[str, str] | None = None,
    organizations: tuple[str, ...] = ("acme", "globex"),
) -> None:
    """The calls world, then each organization below north-city, on north-city:retail, topped up with 50
    (or what ``balances_of`` says)."""
    build_world(database, balances_of=balances_of)
    for login in organizations:
        new = tree.NewNode(position=client(ClientType.PBX), login=login, name=login.title())
        tree.create_node(database, owner_login="north-city", new=new)
        rating.assign_tariff(database, login=login, tariff="north-city:retail")
        amount = (balances_of or {}).get(login, "50")
        if micros(amount):
            balances.topup(database, login=login, amount_micros=micros(amount), transfer_id=f"setup-{login}")


def principal(database: Database, login: str, role: Role) -> Principal:
    """Someone acting at ``login`` with ``role``, as a login of that role would (no password hashing)."""
    node = tree.get_node(database, None, login=login)
    return Principal(place_of(node), role, ROLE_ACTIONS[role], user_id=node.id)
