"""An agent makes calling cards within the profiles its reseller allowed it, and pays for them at once.

The world: house (USD) owns city, a reseller with a tariff, a profile "cards" (type calling_card, at
city:retail) and a profile "prepaid" (retail accounts), and city's agent ana, who may use both, on terms
of 10 % commission, 0.50 per deposit and 1.00 per new account. city has credited ana 80.00.

A card of 5.00 made by ana costs her, as an account she makes with an initial balance of 5.00 does:
  the fee per new account     1.00  (ana's wallet -> city's revenue)
  the face value              5.00  (ana's wallet -> the card)
  the fee per deposit         0.50  (ana's wallet -> city's revenue)
                              6.50 a card, and it earns her 10 % of 5.00 = 0.50 of commission (city pays it).
Ten cards: 65.00 from her wallet (80.00 -> 15.00); city's revenue 10.00 + 5.00 - 5.00 = 10.00; her
commission 5.00. The ledger check runs after every test (tests/conftest.py).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tollway.access import service as access
from tollway.access.model import Principal, Role
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile
from tollway.balances import service as balances
from tollway.balances.service import account_id
from tollway.cards import service as cards
from tollway.cards.model import BatchTerms, CardState
from tollway.cards.service import Selection
from tollway.errors import NotFound, Refusal
from tollway.http.app import create_app
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.rating.plans import Period
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.store.schema import nodes
from tollway.tree import service as tree
from tollway.tree.model import AGENT, reseller

KEY = b"the test installation's PIN key"
FIVE = 5_000_000


@pytest.fixture
def built(database: Database) -> Database:
    tree.create_provider(database, login="house", name="House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="city", name="City"))
    tree.create_node(database, owner_login="city", new=tree.NewNode(position=AGENT, login="ana", name="Ana"))
    rating.create_tariff(database, owner_login="city", name="retail")
    rating.create_tariff(database, owner_login="city", name="premium")
    for name, client_type in (("cards", "calling_card"), ("prepaid", "retail")):
        profile = CustomerProfile(name=name, client_type=client_type, login_prefix="c", tariff="city:retail")
        agents.put_profile(database, owner_login="city", profile=profile)
    agents.set_terms(
        database, agent_login="ana", terms=AgentTerms(100_000, 500_000, 1_000_000), profiles=["cards", "prepaid"]
    )
    balances.topup(database, login="ana", amount_micros=80_000_000, transfer_id="ana-1")
    return database


def principal_of(database: Database, login: str, role: Role) -> Principal:
    key, _ = access.create_api_key(database, None, node_login=login, name=f"{login}-key", role=role)
    return access.principal_of_api_key(database, key_id=key.key_id)


def account(database: Database, login: str, purpose: AccountPurpose) -> int:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        found = ledger_store.get_account(connection, account_id(connection, node, purpose))
        assert found is not None
        return found.balance_micros


def by_ana(database: Database, name: str, count: int, **terms: object) -> object:
    wanted = BatchTerms(name=name, count=count, face_value_micros=FIVE, **terms)  # type: ignore[arg-type]
    ana = principal_of(database, "ana", Role.AGENT)
    return cards.create_batch(database, owner_login="city", terms=wanted, pin_key=KEY, principal=ana)


def node_count(database: Database) -> int:
    with database.reading() as connection:
        return int(connection.execute(select(func.count()).select_from(nodes)).scalar_one())


def test_an_agent_pays_its_fee_and_the_face_value_of_each_card_it_makes(built: Database) -> None:
    made = by_ana(built, "ana-1", 10, profile="cards")
    assert len(made.cards) == 10  # type: ignore[attr-defined]
    assert account(built, "ana", AccountPurpose.WALLET) == 15_000_000  # 80.00 - 10 x 6.50
    assert account(built, "ana", AccountPurpose.COMMISSION) == 5_000_000  # 10 x 0.50
    assert account(built, "city", AccountPurpose.REVENUE) == 10_000_000  # 10 x (1.00 + 0.50) - 5.00
    # Each card holds its 5.00 already, new until it is sold or used; ana manages it, at the profile's tariff.
    view = cards.get_card(built, owner_login="city", serial="000000007")
    assert (view.card.state, view.balance_micros) == (CardState.NEW, FIVE)
    with built.reading() as connection:
        node = tree.require_node(connection, view.card.login)
        assert node.managed_by_agent_id == tree.require_node(connection, "ana").id
    # Its sale moves no money again: city's issuance has handed out only ana's 80.00.
    assert cards.activate(built, owner_login="city", selection=Selection(batch="ana-1")) == 10
    assert cards.get_card(built, owner_login="city", serial="000000007").balance_micros == FIVE
    assert account(built, "city", AccountPurpose.ISSUANCE) == -80_000_000


def test_an_agent_cannot_mint_more_than_it_holds(built: Database) -> None:
    by_ana(built, "ana-1", 10, profile="cards")
    before = node_count(built)
    needs = r"19\.50 USD \(3 cards x \(5\.00 \+ fee 0\.50 \+ account fee 1\.00\)\)"  # 3 x 6.50 > 15.00
    with pytest.raises(Refusal, match=needs):
        by_ana(built, "ana-2", 3, profile="cards")
    assert node_count(built) == before and account(built, "ana", AccountPurpose.WALLET) == 15_000_000
    by_ana(built, "ana-3", 2, profile="cards")  # 13.00: it fits
    assert account(built, "ana", AccountPurpose.WALLET) == 2_000_000


def test_an_agent_cannot_exceed_its_profiles(built: Database) -> None:
    with pytest.raises(Refusal, match="profile_required"):
        by_ana(built, "a", 1)
    with pytest.raises(Refusal, match="profile_not_allowed"):  # a profile of retail accounts, not of cards
        by_ana(built, "a", 1, profile="prepaid")
    with pytest.raises(Refusal, match="profile_not_allowed"):  # another tariff than its profile's
        by_ana(built, "a", 1, profile="cards", tariff="city:premium")
    with pytest.raises(NotFound):
        by_ana(built, "a", 1, profile="wholesale")
    subscriptions.create_plan(
        built, owner_login="city", name="talk", fee_micros=0, period=Period.MONTH, included_seconds=600
    )
    with pytest.raises(Refusal, match="plan_not_allowed"):
        by_ana(built, "a", 1, profile="cards", plan="city:talk")
    with pytest.raises(Refusal, match="batch_size_invalid"):
        by_ana(built, "a", 10_001, profile="cards")
    agents.set_terms(built, agent_login="ana", terms=AgentTerms(100_000, 500_000, 1_000_000), profiles=["prepaid"])
    with pytest.raises(Refusal, match="profile_not_allowed"):  # no longer hers
        by_ana(built, "a", 1, profile="cards")
    assert account(built, "ana", AccountPurpose.WALLET) == 80_000_000


def test_over_http_an_agent_gets_its_cards_csv_once(built: Database) -> None:
    _, key = access.create_api_key(built, None, node_login="ana", name="ana-http", role=Role.AGENT)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(built, sealer=Sealer(Sealer.new_key())), base_url="https://testserver") as http:
        body = {"id": "web", "count": 2, "face_value": "5.00", "profile": "cards"}
        made = http.post("/api/v1/nodes/city/card-batches", json=body, headers=headers)
        assert made.status_code == 201, made.text
        assert made.headers["cache-control"] == "no-store" and len(made.text.splitlines()) == 3
        again = http.post("/api/v1/nodes/city/card-batches", json=body, headers=headers)
        assert again.json()["reason"] == "batch_exists"
        anonymous = body | {"id": "w2", "profile": None}
        refused = http.post("/api/v1/nodes/city/card-batches", json=anonymous, headers=headers)
        assert refused.status_code == 422 and refused.json()["reason"] == "profile_required"
    assert account(built, "ana", AccountPurpose.WALLET) == 67_000_000  # 80.00 - 2 x 6.50
