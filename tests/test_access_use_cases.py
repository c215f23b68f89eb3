"""The one rule, applied inside the use cases: the same answer whichever interface calls them."""

from __future__ import annotations

import pytest

from tollway.access import service as access
from tollway.access.model import Forbidden, Principal, Role
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.demo import load_demo
from tollway.errors import NotFound, Refusal
from tollway.store.database import Database
from tollway.tree import model
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Status

PASSWORD = "correct horse battery"


def login_as(database: Database, node_login: str, role: Role) -> Principal:
    access.create_user(database, None, node_login=node_login, login=f"{node_login}-user", password=PASSWORD, role=role)
    return access.login_with_password(database, login=f"{node_login}-user", password=PASSWORD)


@pytest.fixture
def demo(database: Database) -> Database:
    load_demo(database)
    return database


def test_a_reseller_tops_up_its_own_clients_only(demo: Database) -> None:
    city = login_as(demo, "north-city", Role.RESELLER_ADMIN)
    balances.topup(demo, login="alice", amount_micros=1_500_000, transfer_id="web-1", principal=city)
    assert balances.get_balance(demo, login="alice", principal=city).balance_micros == 26_500_000
    with pytest.raises(NotFound):  # carol belongs to north-metro: invisible, not merely forbidden
        balances.topup(demo, login="carol", amount_micros=1_000_000, transfer_id="web-2", principal=city)
    with pytest.raises(Forbidden):  # nobody tops itself up
        balances.topup(demo, login="north-city", amount_micros=1_000_000, transfer_id="web-3", principal=city)
    with pytest.raises(NotFound):
        balances.get_balance(demo, login="atlas-north", principal=city)


def test_an_agent_creates_clients_for_its_reseller_and_manages_them(demo: Database) -> None:
    ana = login_as(demo, "agent-ana", Role.AGENT)
    frank = tree.create_node(
        demo,
        owner_login="north-city",
        new=tree.NewNode(position=model.client(ClientType.RETAIL), login="frank", name="Frank"),
        principal=ana,
    )
    assert frank.parent_id is not None and frank.managed_by_agent_id == ana.place.node_id
    # Her top-up is a deposit from her own wallet (100.00 in the demo), never credit from north-city.
    with pytest.raises(Refusal, match="agent_deposits_from_wallet"):
        balances.topup(demo, login="frank", amount_micros=5_000_000, transfer_id="ana-1", principal=ana)
    agents.deposit(demo, client_login="frank", amount_micros=5_000_000, transfer_id="ana-1", principal=ana)
    assert balances.get_balance(demo, login="frank", principal=ana).balance_micros == 5_000_000
    # 100.00 - 5.00 - her 0.50 deposit fee (the demo's terms; tollway.tree alone charges no account fee)
    assert balances.get_balance(demo, login="agent-ana", principal=ana).balance_micros == 94_500_000


def test_an_agent_never_creates_resellers_nor_acts_outside_its_clients(demo: Database) -> None:
    ana = login_as(demo, "agent-ana", Role.AGENT)
    with pytest.raises(Forbidden):
        tree.create_node(
            demo,
            owner_login="north-city",
            new=tree.NewNode(position=model.AGENT, login="agent-two", name="Two"),
            principal=ana,
        )
    with pytest.raises(NotFound):  # not its reseller
        tree.create_node(
            demo,
            owner_login="north-metro",
            new=tree.NewNode(position=model.client(ClientType.RETAIL), login="x9", name="X"),
            principal=ana,
        )
    with pytest.raises(NotFound):  # trunk-one is north-city's, but not managed by ana
        balances.topup(demo, login="trunk-one", amount_micros=1_000_000, transfer_id="ana-2", principal=ana)
    with pytest.raises(Forbidden):  # agents never adjust, change credit lines or suspend
        balances.set_credit_limit(demo, login="alice", credit_limit_micros=1_000_000, principal=ana)
    with pytest.raises(Forbidden):
        tree.set_status(demo, login="alice", status=Status.SUSPENDED, principal=ana)


def test_a_client_reads_its_balance_and_changes_nothing(demo: Database) -> None:
    alice = login_as(demo, "alice", Role.CLIENT)
    assert balances.get_balance(demo, login="alice", principal=alice).balance_micros == 25_000_000
    with pytest.raises(Forbidden):
        balances.topup(demo, login="alice", amount_micros=1_000_000, transfer_id="self-1", principal=alice)
    with pytest.raises(NotFound):
        balances.get_balance(demo, login="bob", principal=alice)


def test_only_the_provider_sets_exchange_rates(demo: Database) -> None:
    house = login_as(demo, "house", Role.PROVIDER_ADMIN)
    city = login_as(demo, "north-city", Role.RESELLER_ADMIN)
    assert balances.set_exchange_rate(
        demo, base_currency="GBP", quote_currency="USD", rate="1.27", principal=house
    ).rate == balances.exchange.check_rate("1.27")
    with pytest.raises(Forbidden):
        balances.set_exchange_rate(demo, base_currency="GBP", quote_currency="USD", rate="2", principal=city)
