"""Demo data: a provider with resellers on every level, agents, clients of every type, balances.

Every step is idempotent (logins are looked up, transfer ids are fixed), so running it again
after an interruption completes it and changes nothing once complete.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile
from tollway.balances import service as balances
from tollway.errors import Refusal
from tollway.money import to_micros
from tollway.payments import records
from tollway.payments import service as shop
from tollway.payments.model import BillingProfile, TopupOffer
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.rating.dialplan import DialPlan
from tollway.rating.plans import Period
from tollway.rating.sheets import Layout
from tollway.rating.tariff import Defaults, Derivation, RateEntry
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
            frozenset(
                {Feature.TARIFFS, Feature.CALLING_CARDS, Feature.AGENTS, Feature.ONLINE_SHOP, Feature.BRANDED_PORTAL}
            ),
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
    changed |= _load_rating(database)
    changed |= _load_agent_terms(database)
    changed |= _load_shop(database)
    return changed


DEMO_PROFILE = CustomerProfile(name="prepaid", client_type="retail", login_prefix="nc", tariff="north-city:retail")
DEMO_AGENT_TERMS = AgentTerms(commission_ppm=100_000, topup_fee_micros=500_000, account_fee_micros=1_000_000)


def _load_agent_terms(database: Database) -> bool:
    """agent-ana at 10 % commission, 0.50 a deposit and 1.00 a new account, from north-city's "prepaid"."""
    if agents.get_terms(database, agent_login="agent-ana") == (DEMO_AGENT_TERMS, [DEMO_PROFILE.name]):
        return False
    agents.put_profile(database, owner_login="north-city", profile=DEMO_PROFILE)
    agents.set_terms(database, agent_login="agent-ana", terms=DEMO_AGENT_TERMS, profiles=[DEMO_PROFILE.name])
    return True


DEMO_BANK = {
    "account_holder": "North City VoIP LLC",
    "bank_name": "First Demo Bank",
    "account_number": "000123456789",
    "routing_number": "021000021",
    "instructions": "Write the reference the shop shows you on your transfer.",
}
DEMO_TOPUPS = TopupOffer("USD", (to_micros("10"), to_micros("20"), to_micros("50")), to_micros("5"), to_micros("500"))
DEMO_BILLING = BillingProfile(
    legal_name="North City VoIP LLC", address="1 Main Street, North City", tax_id="US-00-0000000", invoice_prefix="NC"
)


def _load_shop(database: Database) -> bool:
    """north-city's shop: bank transfers into its account, top-ups of 10, 20, 50 or 5 to 500 USD, its billing
    profile. No card payments: Stripe needs the seller's own keys (docs/payments.md)."""
    if shop.list_gateways(database, seller_login="north-city"):
        return False
    shop.configure_bank_transfer(database, seller_login="north-city", details=DEMO_BANK)
    shop.put_topup_offer(database, seller_login="north-city", offer=DEMO_TOPUPS)
    records.set_billing_profile(database, seller_login="north-city", profile=DEMO_BILLING)
    return True


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


# The provider's wholesale rate sheet (USD per minute); atlas sells the same destinations in EUR.
DEMO_SHEET = """prefix,description,price,connect_fee,minimal_time,resolution,from_day,to_day,from_time,to_time
1,USA and Canada,0.010,,,6,,,,
1212,USA - New York,0.009,,,6,,,,
1800,USA - Toll free,0,,,1,,,,
44,United Kingdom - peak,0.020,,,,0,4,08:00,20:00
44,United Kingdom - off-peak,0.012,,,,0,4,20:00,08:00
44,United Kingdom - weekend,0.010,,,,5,6,,
447,United Kingdom - Mobile,0.035,,,,,,,
4420,United Kingdom - London,0.015,,,,,,,
33,France,0.018,,,,,,,
336,France - Mobile,0.040,,,,,,,
337,France - Mobile,0.040,,,,,,,
49,Germany,0.016,,,,,,,
4915,Germany - Mobile,0.045,,,,,,,
4916,Germany - Mobile,0.045,,,,,,,
4917,Germany - Mobile,0.045,,,,,,,
34,Spain,0.017,,,,,,,
346,Spain - Mobile,0.030,,,,,,,
39,Italy,0.017,,,,,,,
393,Italy - Mobile,0.038,,,,,,,
52,Mexico,0.020,,,,,,,
521,Mexico - Mobile,0.045,,,,,,,
55,Brazil,0.025,,,,,,,
91,India,0.022,,,,,,,
86,China,0.012,,,,,,,
81,Japan,0.040,,,,,,,
61,Australia,0.025,,,,,,,
234,Nigeria,0.110,0.050,30,30,,,,
880,Bangladesh,0.030,,,,,,,
53,Cuba,0.850,,,60,,,,
882,International networks,1.200,0.100,60,60,,,,
"""


@dataclass(frozen=True)
class DemoTariff:
    owner: str
    name: str
    currency: str | None = None
    base: str | None = None  # derived tariffs
    multiplier: str = "1"
    addition: str = "0"
    assigned_to: tuple[str, ...] = ()
    free_prefixes: tuple[str, ...] = ()  # overrides at price 0 (toll-free numbers stay free)


DEMO_TARIFFS = (
    DemoTariff(PROVIDER_LOGIN, "wholesale", assigned_to=("atlas", "bluewave", "solo", "bigcarrier")),
    DemoTariff("atlas", "standard", base="house:wholesale", multiplier="1.10", assigned_to=("atlas-north",)),
    DemoTariff("atlas", "euro", currency="EUR", assigned_to=("atlas-euro",)),
    DemoTariff(
        "atlas-north", "standard", base="atlas:standard", multiplier="1.10", assigned_to=("north-city", "north-metro")
    ),
    DemoTariff("atlas-north", "pbx", base="atlas:standard", multiplier="1.30", assigned_to=("acme-pbx",)),
    DemoTariff(
        "north-city",
        "retail",
        base="atlas-north:standard",
        multiplier="1.25",
        addition="0.005",
        assigned_to=("alice", "bob", "card-batch-1", "corner-shop"),
        free_prefixes=("1800",),
    ),
    DemoTariff("north-city", "wholesale", base="atlas-north:standard", multiplier="1.05", assigned_to=("trunk-one",)),
    DemoTariff("north-metro", "retail", base="atlas-north:standard", multiplier="1.30", assigned_to=("carol",)),
    DemoTariff("atlas-euro", "standard", base="atlas:euro", multiplier="1.10", assigned_to=("euro-paris",)),
    DemoTariff("euro-paris", "retail", base="atlas-euro:standard", multiplier="1.30", assigned_to=("amelie",)),
    DemoTariff("bluewave", "standard", base="house:wholesale", multiplier="1.15", assigned_to=("bluewave-retail",)),
    DemoTariff("bluewave-retail", "retail", base="bluewave:standard", multiplier="1.40", assigned_to=("dave",)),
    DemoTariff("solo", "retail", base="house:wholesale", multiplier="1.50", assigned_to=("erin",)),
)


def _load_rating(database: Database) -> bool:
    """Tariffs on every level (most derived from the one above), a plan, dial plans."""
    changed = False
    for step in DEMO_TARIFFS:
        name = f"{step.owner}:{step.name}"
        try:
            rating.create_tariff(
                database,
                owner_login=step.owner,
                name=step.name,
                currency=step.currency,
                defaults=Defaults(resolution=1),
                base_name=step.base,
                derivation=Derivation(Decimal(step.multiplier), to_micros(step.addition)) if step.base else None,
            )
            changed = True
            for prefix in step.free_prefixes:
                free = RateEntry(prefix, "Toll free", 0)
                rating.set_prefix(database, name=name, prefix=prefix, entries=[free])
        except Refusal as refusal:
            if refusal.reason != "tariff_exists":
                raise
        if step.base is None and rating.get_tariff(database, name=name)[1] == 0:
            rating.import_sheet(database, name=name, stream=io.BytesIO(DEMO_SHEET.encode()), layout=Layout.NATIVE)
        for login in step.assigned_to:
            current = rating.tariff_of(database, login=login)
            if current is None or current.name != name:
                rating.assign_tariff(database, login=login, tariff=name)
                changed = True
    if not subscriptions.list_plans(database, owner_login="north-city", limit=1):
        plan_fee_micros = to_micros("5")
        subscriptions.create_plan(
            database,
            owner_login="north-city",
            name="talk-100",
            fee_micros=plan_fee_micros,
            period=Period.MONTH,
            included_seconds=100 * 60,
            prefixes=("1",),
            rollover=True,
        )
        # Subscribing charges the first month's fee: alice gets it first and keeps her opening 25.00.
        balances.topup(
            database,
            login="alice",
            amount_micros=plan_fee_micros,
            transfer_id="demo-topup-alice-plan",
            reference="demo: her plan's first fee",
        )
        subscriptions.subscribe(database, login="alice", plan_name="north-city:talk-100")
        subscriptions.set_dial_plan(database, login="north-city", plan=DialPlan("1", "011", "1"))
        subscriptions.set_dial_plan(database, login="euro-paris", plan=DialPlan("33", "00", "0"))
        changed = True
    return changed
