"""Demo data: a provider with resellers on every level, agents, clients of every type, balances.

Every step is idempotent (logins are looked up, transfer ids are fixed), so running it again
after an interruption completes it and changes nothing once complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from tollway.balances import service as balances
from tollway.errors import Refusal
from tollway.money import to_micros
from tollway.store.database import Database
from tollway.tree import model
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Feature, Grants, Position

PROVIDER_LOGIN = "house"


@dataclass(frozen=True)
class DemoNode:
    owner: str
    login: str
    name: str
    position: Position
    currency: str | None = None
    topup: str | None = None  # in the node's currency
    credit_limit: str = "0"
    agent: str | None = None
    grants: Grants | None = None
    clients_limit: int | None = None


def _r(level: int) -> Position:
    return model.reseller(level)


def _c(client_type: ClientType) -> Position:
    return model.client(client_type)


DEMO_NODES = (
    DemoNode(PROVIDER_LOGIN, "atlas", "Atlas Telecom (L3)", _r(3), topup="5000"),
    DemoNode("atlas", "atlas-north", "Atlas North (L2)", _r(2), topup="1500", credit_limit="500"),
    DemoNode("atlas", "atlas-euro", "Atlas Europe (L2)", _r(2), currency="EUR", topup="1200"),
    DemoNode("atlas-north", "north-city", "North City VoIP (L1)", _r(1), topup="400", clients_limit=500),
    DemoNode(
        "atlas-north",
        "north-metro",
        "North Metro (L1)",
        _r(1),
        topup="250",
        grants=Grants(
            frozenset({ClientType.RETAIL, ClientType.CALLING_CARD}),
            frozenset({Feature.TARIFFS, Feature.CALLING_CARDS, Feature.AGENTS}),
        ),
    ),
    DemoNode("atlas-north", "acme-pbx", "ACME Corp (PBX)", _c(ClientType.PBX), topup="80"),
    DemoNode("atlas-euro", "euro-paris", "Paris Telecom (L1)", _r(1), topup="300"),
    DemoNode(PROVIDER_LOGIN, "bluewave", "Bluewave (L2)", _r(2), topup="900"),
    DemoNode("bluewave", "bluewave-retail", "Bluewave Retail (L1)", _r(1), topup="200"),
    DemoNode(PROVIDER_LOGIN, "solo", "Solo Reseller (L1)", _r(1), topup="150"),
    DemoNode("north-city", "agent-ana", "Ana (agent)", model.AGENT, topup="100"),
    DemoNode("euro-paris", "agent-ben", "Ben (agent)", model.AGENT, topup="50"),
    DemoNode("north-city", "alice", "Alice (retail)", _c(ClientType.RETAIL), topup="25", agent="agent-ana"),
    DemoNode("north-city", "bob", "Bob (retail)", _c(ClientType.RETAIL), topup="10", agent="agent-ana"),
    DemoNode("north-city", "trunk-one", "Trunk One (wholesale)", _c(ClientType.WHOLESALE), credit_limit="1000"),
    DemoNode("north-city", "card-batch-1", "Cards batch 1", _c(ClientType.CALLING_CARD), topup="5"),
    DemoNode("north-city", "corner-shop", "Corner Callshop", _c(ClientType.CALLSHOP), topup="60"),
    DemoNode("north-metro", "carol", "Carol (retail)", _c(ClientType.RETAIL), topup="12.50"),
    DemoNode("euro-paris", "amelie", "Amélie (retail)", _c(ClientType.RETAIL), topup="20", agent="agent-ben"),
    DemoNode("bluewave-retail", "dave", "Dave (retail)", _c(ClientType.RETAIL), topup="7.25"),
    DemoNode("solo", "erin", "Erin (retail)", _c(ClientType.RETAIL)),
    DemoNode(PROVIDER_LOGIN, "bigcarrier", "Big Carrier (wholesale)", _c(ClientType.WHOLESALE), credit_limit="20000"),
)


def load_demo(database: Database, *, progress: Callable[[str], None] = lambda _: None) -> bool:
    """Load the demo; return False if it was complete already."""
    changed = False
    try:
        tree.create_provider(database, login=PROVIDER_LOGIN, name="Tollway Demo Telecom", currency="USD")
        changed = True
    except Refusal as refusal:
        if refusal.reason != "provider_exists":
            raise
    for step in DEMO_NODES:
        changed |= _load_node(database, step)
        progress(step.login)
    if changed:
        balances.set_exchange_rate(database, base_currency="EUR", quote_currency="USD", rate=Decimal("1.0850"))
    return changed


def _load_node(database: Database, step: DemoNode) -> bool:
    try:
        tree.create_node(
            database,
            owner_login=step.owner,
            new=tree.NewNode(
                position=step.position,
                login=step.login,
                name=step.name,
                currency=step.currency,
                credit_limit_micros=to_micros(step.credit_limit),
                grants=step.grants,
                clients_limit=step.clients_limit,
                managed_by_agent_login=step.agent,
            ),
        )
        created = True
    except Refusal as refusal:
        if refusal.reason != "login_taken":
            raise
        created = False
    if step.topup:
        result = balances.topup(
            database,
            login=step.login,
            amount_micros=to_micros(step.topup),
            transfer_id=f"demo-topup-{step.login}",
            reference="demo opening balance",
        )
        created |= not result.already_existed
    return created
