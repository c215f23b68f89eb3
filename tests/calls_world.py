"""A small world for credit-control scenarios, with prices chosen so every amount can be worked out by hand.

house (provider, USD) -> atlas (L3) -> atlas-north (L2) -> north-city (L1) -> alice, bob (clients)

Who pays whom for a call to 44 (UK), each at the tariff its owner gave it:
- alice and bob pay north-city 0.10 a minute, per second            (north-city:retail)
- north-city pays atlas-north 0.06 a minute, in 6-second steps       (atlas-north:l1)
- atlas-north pays atlas 0.05 a minute, by the minute                (atlas:l2)
- atlas pays house 0.04 a minute plus 0.05 to connect, per second    (house:l3)
"""

from __future__ import annotations

import io
from decimal import Decimal

from tollway.balances import service as balances
from tollway.money import to_micros
from tollway.rating import service as rating
from tollway.rating.sheets import Layout
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType, NodeKind, Position

HEADER = "prefix,description,price,connect_fee,minimal_time,resolution\n"
SHEETS = {
    ("north-city", "retail"): "44,UK,0.10,0,0,1\n1,North America,0.02,0,0,1\n",
    ("atlas-north", "l1"): "44,UK,0.06,0,0,6\n1,North America,0.012,0,0,6\n",
    ("atlas", "l2"): "44,UK,0.05,0,0,60\n1,North America,0.011,0,0,60\n",
    ("house", "l3"): "44,UK,0.04,0.05,0,1\n1,North America,0.01,0,0,1\n",
}
UK = "+44 20 7946 0000"
UK_NUMBER = "442079460000"


def micros(amount: str) -> int:
    return to_micros(Decimal(amount))


def build_world(database: Database, *, balances_of: dict[str, str] | None = None) -> None:
    """The chain above, with each level topped up by its owner with ``balances_of`` (default: plenty)."""
    tree.create_provider(database, login="house", name="House", currency="USD")
    reseller = NodeKind.RESELLER
    for owner, login, position in (
        ("house", "atlas", Position(reseller, level=3)),
        ("atlas", "atlas-north", Position(reseller, level=2)),
        ("atlas-north", "north-city", Position(reseller, level=1)),
        ("north-city", "alice", Position(NodeKind.CLIENT, client_type=ClientType.RETAIL)),
        ("north-city", "bob", Position(NodeKind.CLIENT, client_type=ClientType.RETAIL)),
    ):
        tree.create_node(database, owner_login=owner, new=tree.NewNode(position=position, login=login, name=login))
    for (owner, name), rows in SHEETS.items():
        rating.create_tariff(database, owner_login=owner, name=name)
        rating.import_sheet(
            database, name=f"{owner}:{name}", stream=io.BytesIO((HEADER + rows).encode()), layout=Layout.NATIVE
        )
    for login, tariff in (
        ("alice", "north-city:retail"),
        ("bob", "north-city:retail"),
        ("north-city", "atlas-north:l1"),
        ("atlas-north", "atlas:l2"),
        ("atlas", "house:l3"),
    ):
        rating.assign_tariff(database, login=login, tariff=tariff)
    amounts = {"alice": "10", "bob": "10", "north-city": "100", "atlas-north": "100", "atlas": "100"}
    amounts |= balances_of or {}
    for login, amount in amounts.items():
        if micros(amount):
            balances.topup(database, login=login, amount_micros=micros(amount), transfer_id=f"setup-{login}")


def available(database: Database, login: str) -> int:
    return balances.get_balance(database, login=login).available_micros


def balance(database: Database, login: str) -> int:
    return balances.get_balance(database, login=login).balance_micros


__all__ = ["UK", "UK_NUMBER", "available", "balance", "build_world", "micros", "tree_model"]
