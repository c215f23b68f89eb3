"""The ownership tree through the database: links, ledger accounts, grants, limits, statuses."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from tollway.balances import service as balances
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.ledger import service as ledger
from tollway.ledger.model import AccountPurpose, Phase, TransferRequest
from tollway.store.database import Database
from tollway.store.schema import ledger_accounts, nodes
from tollway.tree import service
from tollway.tree.model import (
    AGENT,
    ALL_CLIENT_TYPES,
    ClientType,
    Feature,
    Grants,
    Node,
    Position,
    Status,
    client,
    reseller,
)
from tollway.tree.service import NewNode

from .test_tree_rules import POSITIONS, ownership_cases

L3 = reseller(3)
L2 = reseller(2)
L1 = reseller(1)
RETAIL = client(ClientType.RETAIL)
PBX = client(ClientType.PBX)


def provider(database: Database, *, currency: str = "USD") -> Node:
    return service.create_provider(
        database, login="house", name="The House", currency=currency, language="fr", time_zone="Europe/Paris"
    )


def create(database: Database, owner: str, position: Position, login: str, **details: Any) -> Node:
    return service.create_node(
        database, owner_login=owner, new=NewNode(position=position, login=login, name=login.title(), **details)
    )


def chain_of_resellers(database: Database) -> None:
    """house -> l3 -> l2 -> l1."""
    provider(database)
    create(database, "house", L3, "l3")
    create(database, "l3", L2, "l2")
    create(database, "l2", L1, "l1")


def read(database: Database, login: str) -> Node:
    with database.reading() as connection:
        return service.require_node(connection, login)


def row_counts(database: Database) -> tuple[int, int]:
    """How many nodes and ledger accounts exist: a refused request changes neither."""
    with database.reading() as connection:
        node_count = connection.execute(select(func.count()).select_from(nodes)).scalar_one()
        account_count = connection.execute(select(func.count()).select_from(ledger_accounts)).scalar_one()
    return node_count, account_count


def accounts_of(database: Database, login: str) -> dict[str, tuple[str, bool, int]]:
    """The node's ledger accounts as purpose -> (currency, floor, credit limit)."""
    node = read(database, login)
    with database.reading() as connection:
        rows = connection.execute(select(ledger_accounts).where(ledger_accounts.c.node_id == node.id)).all()
    return {row.purpose: (row.currency, row.floor, row.credit_limit_micros) for row in rows}


def refused(database: Database, owner: str, new: NewNode) -> str:
    """Try to create ``new`` under ``owner``; return the reason it was refused, checking nothing changed."""
    before = row_counts(database)
    with pytest.raises(Refusal) as refusal:
        service.create_node(database, owner_login=owner, new=new)
    assert row_counts(database) == before, f"{new.login}: a refused creation left rows behind"
    return refusal.value.reason


def test_a_whole_tree_is_built_from_the_provider_down(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", PBX, "pbx-of-l2")
    create(database, "l2", AGENT, "agent-of-l2")
    create(database, "l1", AGENT, "agent-of-l1")
    for client_type in sorted(ALL_CLIENT_TYPES):
        create(database, "l1", client(client_type), f"{client_type}-of-l1")

    house, l3, l2, l1 = (read(database, login) for login in ("house", "l3", "l2", "l1"))
    assert house.parent_id is None
    assert (l3.parent_id, l2.parent_id, l1.parent_id) == (house.id, l3.id, l2.id)
    assert l1.path == f"/{house.id}/{l3.id}/{l2.id}/{l1.id}/"
    retail = read(database, "retail-of-l1")
    assert retail.ancestor_ids == [house.id, l3.id, l2.id, l1.id]
    assert retail.position == RETAIL
    assert retail.status is Status.ACTIVE
    assert read(database, "pbx-of-l2").parent_id == l2.id
    assert read(database, "agent-of-l2").position == AGENT
    assert row_counts(database)[0] == 4 + 1 + 2 + len(ALL_CLIENT_TYPES)


def owners_of_every_position(database: Database) -> dict[str, str]:
    """A node in each of the ten positions: position name -> login."""
    chain_of_resellers(database)
    logins = {"provider": "house", "L3": "l3", "L2": "l2", "L1": "l1", "agent": "agent-of-l1"}
    create(database, "l1", AGENT, "agent-of-l1")
    for client_type in sorted(ALL_CLIENT_TYPES):
        create(database, "l1", client(client_type), f"{client_type}-of-l1")
        logins[str(client_type)] = f"{client_type}-of-l1"
    user = NewNode(position=client(ClientType.USER), login="user-of-pbx", name="User")
    database.run(
        lambda connection: service.create_node_in(
            connection, owner_login="pbx-of-l1", new=user, now=utc_now(), organization_user=True
        )
    )
    logins["user"] = "user-of-pbx"
    return logins


def test_every_link_the_rules_refuse_is_refused_and_leaves_nothing_behind(database: Database) -> None:
    logins = owners_of_every_position(database)
    refused_links = [(owner, child) for owner, child, allowed in ownership_cases() if not allowed]
    assert len(refused_links) == 102
    for owner, child in refused_links:
        new = NewNode(position=POSITIONS[child], login=f"new-{owner}-{child}".lower().replace("_", "-"), name="New")
        assert refused(database, logins[owner], new) == "ownership_refused", (owner, child)


def test_every_link_the_rules_allow_is_created(database: Database) -> None:
    logins = owners_of_every_position(database)
    allowed_links = [(owner, child) for owner, child, allowed in ownership_cases() if allowed]
    assert len(allowed_links) == 19
    for owner, child in allowed_links:
        login = f"new-{owner}-{child}".lower().replace("_", "-")
        if child == "user":  # allowed, but made only through its organization
            made_directly = NewNode(POSITIONS[child], login, "U")
            assert refused(database, logins[owner], made_directly) == "user_through_organization"
            continue
        node = create(database, logins[owner], POSITIONS[child], login)
        assert node.position == POSITIONS[child]
        assert node.parent_id == read(database, logins[owner]).id


def test_a_creation_refused_for_any_reason_leaves_nothing_behind(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", AGENT, "agent-of-l1")
    create(database, "l1", RETAIL, "alice")
    cases = {
        "login_invalid": NewNode(RETAIL, login="Bob Smith", name="Bob"),
        "login_taken": NewNode(RETAIL, login="alice", name="Another Alice"),
        "name_invalid": NewNode(RETAIL, login="bob", name="Bob\nSmith"),
        "currency_invalid": NewNode(RETAIL, login="bob", name="Bob", currency="XYZ"),
        "language_invalid": NewNode(RETAIL, login="bob", name="Bob", language="english"),
        "time_zone_invalid": NewNode(RETAIL, login="bob", name="Bob", time_zone="Mars/Olympus_Mons"),
        "credit_limit_invalid": NewNode(RETAIL, login="bob", name="Bob", credit_limit_micros=-1),
        "clients_limit_invalid": NewNode(L1, login="bob", name="Bob", clients_limit=-1),
        "concurrent_calls_limit_invalid": NewNode(RETAIL, login="bob", name="Bob", concurrent_calls_limit=-5),
        "grants_only_on_resellers": NewNode(RETAIL, login="bob", name="Bob", grants=Grants()),
        "node_not_found": NewNode(RETAIL, login="bob", name="Bob", managed_by_agent_login="nobody"),
        "agent_manages_clients_only": NewNode(AGENT, login="bob", name="Bob", managed_by_agent_login="agent-of-l1"),
    }
    owners = {"clients_limit_invalid": "l2", "agent_manages_clients_only": "l1"}
    for reason, new in cases.items():
        assert refused(database, owners.get(reason, "l1"), new) == reason
    assert refused(database, "nobody", NewNode(RETAIL, login="bob", name="Bob")) == "node_not_found"


def test_every_node_gets_its_ledger_accounts(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", AGENT, "agent-of-l1", credit_limit_micros=5_000_000)
    create(database, "l1", RETAIL, "alice", credit_limit_micros=20_000_000)

    assert accounts_of(database, "house") == {
        "wallet": ("USD", False, 0),
        "revenue": ("USD", False, 0),
        "issuance": ("USD", False, 0),
    }
    assert accounts_of(database, "l2") == {
        "wallet": ("USD", True, 0),
        "revenue": ("USD", False, 0),
        "issuance": ("USD", False, 0),
    }
    assert accounts_of(database, "alice") == {
        "wallet": ("USD", True, 20_000_000),
        "revenue": ("USD", False, 0),
        "issuance": ("USD", False, 0),
    }
    assert accounts_of(database, "agent-of-l1") == {
        "wallet": ("USD", True, 5_000_000),
        "revenue": ("USD", False, 0),
        "issuance": ("USD", False, 0),
        "commission": ("USD", True, 0),
    }


def test_the_house_balance_is_unlimited_and_a_postpaid_client_has_its_credit_line(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice", credit_limit_micros=20_000_000)
    assert balances.get_balance(database, login="house").unlimited
    alice = balances.get_balance(database, login="alice")
    assert not alice.unlimited
    assert (alice.balance_micros, alice.credit_limit_micros, alice.available_micros) == (0, 20_000_000, 20_000_000)


def test_a_node_inherits_currency_language_and_time_zone_from_its_owner(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    for login in ("l3", "l2", "l1", "alice"):
        node = read(database, login)
        assert (node.currency, node.language, node.time_zone) == ("USD", "fr", "Europe/Paris"), login


def test_a_node_may_override_the_defaults_and_its_children_inherit_the_override(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", L1, "l1-brazil", currency="EUR", language="pt_BR", time_zone="America/Sao_Paulo")
    create(database, "l1-brazil", RETAIL, "joao")
    for login in ("l1-brazil", "joao"):
        node = read(database, login)
        assert (node.currency, node.language, node.time_zone) == ("EUR", "pt_BR", "America/Sao_Paulo"), login
        assert {currency for currency, _, _ in accounts_of(database, login).values()} == {"EUR"}


def test_a_reseller_in_euros_under_an_owner_in_dollars_works(database: Database) -> None:
    provider(database)
    create(database, "house", L3, "euro-reseller", currency="EUR")
    create(database, "euro-reseller", L2, "euro-l2")
    assert read(database, "euro-reseller").currency == "EUR"
    assert read(database, "euro-l2").currency == "EUR"
    balances.topup(database, login="euro-reseller", amount_micros=100_000_000, transfer_id="topup-euro-1")
    balance = balances.get_balance(database, login="euro-reseller")
    assert (balance.currency, balance.balance_micros) == ("EUR", 100_000_000)
    assert read(database, "house").currency == "USD"


def test_the_currency_stays_what_it_was_at_creation(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", L1, "l1-euro", currency="EUR")
    service.set_grants(database, login="l1-euro", grants=Grants(frozenset({ClientType.RETAIL}), frozenset()))
    service.set_limits(database, login="l1-euro", clients_limit=3, concurrent_calls_limit=2)
    service.set_status(database, login="l1-euro", status=Status.SUSPENDED)
    service.set_status(database, login="l1-euro", status=Status.ACTIVE)
    assert read(database, "l1-euro").currency == "EUR"
    changes = [name for name in dir(service) if name.startswith(("set_", "update_", "change_"))]
    assert changes == ["set_grants", "set_limits", "set_status"]


def test_a_sub_reseller_sells_what_its_owner_grants_and_no_more(database: Database) -> None:
    provider(database)
    retail_and_pbx = Grants(frozenset({ClientType.RETAIL, ClientType.PBX}), frozenset({Feature.TARIFFS}))
    create(database, "house", L3, "l3", grants=retail_and_pbx)
    every_type = Grants(ALL_CLIENT_TYPES, frozenset({Feature.TARIFFS}))
    wider = NewNode(L2, login="l2-wider", name="Wider", grants=every_type)
    assert refused(database, "l3", wider) == "client_types_wider_than_owner"
    more_features = NewNode(L2, login="l2-more", name="More", grants=Grants(frozenset(), frozenset(Feature)))
    assert refused(database, "l3", more_features) == "features_wider_than_owner"

    create(database, "l3", L2, "l2", grants=Grants(frozenset({ClientType.PBX}), frozenset()))
    create(database, "l2", L1, "l1")  # inherits the narrowed grants of l2
    assert read(database, "l1").grants == Grants(frozenset({ClientType.PBX}), frozenset())
    create(database, "l1", PBX, "pbx-customer")
    for client_type in (ClientType.RETAIL, ClientType.WHOLESALE, ClientType.CALLING_CARD, ClientType.CALLSHOP):
        new = NewNode(client(client_type), login=f"{client_type}-customer".replace("_", "-"), name="Customer")
        assert refused(database, "l1", new) == "client_type_not_allowed"


def test_a_client_type_the_provider_grants_a_reseller_not_is_refused_directly_below_it(database: Database) -> None:
    provider(database)
    create(database, "house", L1, "retail-only", grants=Grants(frozenset({ClientType.RETAIL}), frozenset()))
    create(database, "retail-only", RETAIL, "alice")
    assert refused(database, "retail-only", NewNode(PBX, login="acme-pbx", name="Acme")) == "client_type_not_allowed"


def test_grants_may_be_narrowed_but_never_widened_beyond_the_owner(database: Database) -> None:
    provider(database)
    create(database, "house", L3, "l3", grants=Grants(frozenset({ClientType.RETAIL, ClientType.PBX}), frozenset()))
    create(database, "l3", L2, "l2")
    with pytest.raises(Refusal) as refusal:
        service.set_grants(database, login="l2", grants=Grants(ALL_CLIENT_TYPES | {ClientType.USER}, frozenset()))
    assert refusal.value.reason == "client_types_wider_than_owner"
    with pytest.raises(Refusal) as refusal:
        service.set_grants(
            database, login="l2", grants=Grants(frozenset({ClientType.PBX}), frozenset({Feature.ONLINE_SHOP}))
        )
    assert refusal.value.reason == "features_wider_than_owner"
    assert read(database, "l2").grants == Grants(frozenset({ClientType.RETAIL, ClientType.PBX}), frozenset())

    narrowed = service.set_grants(database, login="l2", grants=Grants(frozenset({ClientType.PBX}), frozenset()))
    assert narrowed.grants == Grants(frozenset({ClientType.PBX}), frozenset())
    assert read(database, "l2").grants == narrowed.grants


def test_grants_may_not_be_narrowed_below_what_a_sub_reseller_still_sells(database: Database) -> None:
    chain_of_resellers(database)
    service.set_grants(database, login="l1", grants=Grants(frozenset({ClientType.RETAIL}), frozenset({Feature.PLANS})))
    with pytest.raises(Refusal) as refusal:
        service.set_grants(database, login="l2", grants=Grants(frozenset({ClientType.PBX}), frozenset(Feature)))
    assert refusal.value.reason == "sub_reseller_wider"
    assert "l1" in refusal.value.message
    with pytest.raises(Refusal) as refusal:
        service.set_grants(database, login="l2", grants=Grants(ALL_CLIENT_TYPES, frozenset({Feature.TARIFFS})))
    assert refusal.value.reason == "sub_reseller_wider"
    assert read(database, "l2").grants == Grants()

    service.set_grants(database, login="l2", grants=Grants(frozenset({ClientType.RETAIL}), frozenset({Feature.PLANS})))
    assert read(database, "l2").grants == read(database, "l1").grants


def test_only_resellers_have_grants(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    for login in ("house", "alice"):
        with pytest.raises(Refusal) as refusal:
            service.set_grants(database, login=login, grants=Grants())
        assert refusal.value.reason == "grants_only_on_resellers"


def test_the_clients_limit_counts_open_clients_in_the_whole_subtree(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", L1, "l1-second")
    service.set_limits(database, login="l2", clients_limit=3, concurrent_calls_limit=None)
    create(database, "l2", PBX, "pbx-of-l2")
    create(database, "l1", RETAIL, "alice")
    create(database, "l1-second", RETAIL, "bob")
    create(database, "l1", AGENT, "agent-of-l1")  # agents and resellers are not clients: they take no place
    create(database, "l2", L1, "l1-third")
    for owner in ("l1", "l1-second", "l2"):
        new = NewNode(RETAIL if owner != "l2" else PBX, login=f"one-too-many-{owner}", name="Carol")
        assert refused(database, owner, new) == "clients_limit_reached"


def test_a_closed_client_frees_its_place_under_the_clients_limit(database: Database) -> None:
    chain_of_resellers(database)
    service.set_limits(database, login="l2", clients_limit=1, concurrent_calls_limit=None)
    create(database, "l1", RETAIL, "alice")
    assert refused(database, "l1", NewNode(RETAIL, login="bob", name="Bob")) == "clients_limit_reached"
    service.set_status(database, login="alice", status=Status.SUSPENDED)
    assert refused(database, "l1", NewNode(RETAIL, login="bob", name="Bob")) == "clients_limit_reached"
    service.set_status(database, login="alice", status=Status.CLOSED)
    create(database, "l1", RETAIL, "bob")


def test_the_clients_limit_of_the_owner_itself_and_of_the_provider_count_too(database: Database) -> None:
    provider(database)
    service.set_limits(database, login="house", clients_limit=2, concurrent_calls_limit=None)
    create(database, "house", L1, "l1", clients_limit=1)
    create(database, "l1", RETAIL, "alice")
    assert refused(database, "l1", NewNode(RETAIL, login="bob", name="Bob")) == "clients_limit_reached"
    create(database, "house", RETAIL, "direct-client")
    create(database, "house", L1, "l1-other")
    assert refused(database, "l1-other", NewNode(RETAIL, login="carol", name="Carol")) == "clients_limit_reached"


@pytest.mark.timeout(60)
def test_two_creations_under_different_owners_cannot_both_take_the_last_place(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", L1, "l1-second")
    service.set_limits(database, login="l2", clients_limit=1, concurrent_calls_limit=None)
    outcomes: list[object] = []

    def second_creation() -> None:
        try:
            outcomes.append(create(database, "l1-second", RETAIL, "bob"))
        except Refusal as refusal:
            outcomes.append(refusal.reason)

    with database.transaction() as connection:
        alice = NewNode(RETAIL, login="alice", name="Alice")
        service.create_node_in(connection, owner_login="l1", new=alice, now=utc_now())
        racer = threading.Thread(target=second_creation)
        racer.start()
        racer.join(timeout=0.5)  # without a lock on l2, the second creation would finish here, unseen
    racer.join(timeout=30)
    assert not racer.is_alive()
    assert outcomes == ["clients_limit_reached"]
    assert [read(database, "alice").status] == [Status.ACTIVE]


def test_suspending_a_reseller_blocks_its_whole_subtree(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    service.set_status(database, login="l2", status=Status.SUSPENDED)

    assert service.effective_status(database, login="alice") is Status.SUSPENDED
    assert service.effective_status(database, login="l1") is Status.SUSPENDED
    assert service.effective_status(database, login="l3") is Status.ACTIVE
    assert read(database, "alice").status is Status.ACTIVE  # its own status is untouched
    for owner, position in (("l1", RETAIL), ("l1", AGENT), ("l2", L1), ("l2", PBX)):
        new = NewNode(position, login=f"new-below-{owner}-{position.kind}", name="New")
        assert refused(database, owner, new) == "owner_not_active"
    create(database, "l3", L2, "l2-sibling")  # the suspension does not reach above or beside l2

    service.set_status(database, login="l2", status=Status.ACTIVE)
    assert service.effective_status(database, login="alice") is Status.ACTIVE
    create(database, "l1", RETAIL, "bob")


def test_a_suspended_owner_cannot_create_below_itself(database: Database) -> None:
    chain_of_resellers(database)
    service.set_status(database, login="l1", status=Status.SUSPENDED)
    assert refused(database, "l1", NewNode(RETAIL, login="alice", name="Alice")) == "owner_not_active"


def test_closing_needs_every_child_closed(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    with pytest.raises(Refusal) as refusal:
        service.set_status(database, login="l1", status=Status.CLOSED)
    assert refusal.value.reason == "node_has_open_children"
    service.set_status(database, login="alice", status=Status.SUSPENDED)
    with pytest.raises(Refusal) as refusal:
        service.set_status(database, login="l1", status=Status.CLOSED)
    assert refusal.value.reason == "node_has_open_children"
    assert read(database, "l1").status is Status.ACTIVE

    service.set_status(database, login="alice", status=Status.CLOSED)
    assert service.set_status(database, login="l1", status=Status.CLOSED).status is Status.CLOSED
    assert service.effective_status(database, login="alice") is Status.CLOSED
    assert refused(database, "l1", NewNode(RETAIL, login="bob", name="Bob")) == "owner_not_active"


def test_closing_needs_a_settled_balance(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    balances.topup(database, login="alice", amount_micros=12_500_000, transfer_id="topup-alice-1")
    with pytest.raises(Refusal) as refusal:
        service.set_status(database, login="alice", status=Status.CLOSED)
    assert refusal.value.reason == "balance_not_zero"
    assert read(database, "alice").status is Status.ACTIVE

    balances.adjust(
        database, login="alice", amount_micros=-12_500_000, reason="refund on closing", transfer_id="settle-alice-1"
    )
    assert balances.get_balance(database, login="alice").balance_micros == 0
    assert service.set_status(database, login="alice", status=Status.CLOSED).status is Status.CLOSED


def test_a_closed_node_stays_closed(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    service.set_status(database, login="alice", status=Status.CLOSED)
    for status in Status:
        with pytest.raises(Refusal) as refusal:
            service.set_status(database, login="alice", status=status)
        assert refusal.value.reason == "node_closed"
    assert read(database, "alice").status is Status.CLOSED


def test_setting_the_same_status_again_is_refused(database: Database) -> None:
    chain_of_resellers(database)
    with pytest.raises(Refusal) as refusal:
        service.set_status(database, login="l1", status=Status.ACTIVE)
    assert refusal.value.reason == "status_unchanged"


def test_the_provider_status_cannot_change(database: Database) -> None:
    provider(database)
    for status in Status:
        with pytest.raises(Refusal) as refusal:
            service.set_status(database, login="house", status=status)
        assert refusal.value.reason == "provider_status_fixed"
    assert read(database, "house").status is Status.ACTIVE


def test_there_is_exactly_one_provider(database: Database) -> None:
    provider(database)
    before = row_counts(database)
    with pytest.raises(Refusal) as refusal:
        service.create_provider(database, login="other-house", name="Another House", currency="EUR")
    assert refusal.value.reason == "provider_exists"
    assert row_counts(database) == before


def test_a_login_belongs_to_one_node_only(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "alice")
    assert refused(database, "l1", NewNode(RETAIL, login="alice", name="Alice Again")) == "login_taken"
    assert refused(database, "house", NewNode(L3, login="alice", name="Alice Reseller")) == "login_taken"
    assert refused(database, "l1", NewNode(RETAIL, login="house", name="Not The House")) == "login_taken"


def test_an_agent_manages_clients_of_its_own_reseller(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l2", L1, "l1-other")
    agent = create(database, "l1", AGENT, "agent-of-l1")
    create(database, "l1-other", AGENT, "agent-of-other")
    create(database, "l1", RETAIL, "alice")

    managed = create(database, "l1", RETAIL, "bob", managed_by_agent_login="agent-of-l1")
    assert managed.managed_by_agent_id == agent.id
    assert managed.parent_id == read(database, "l1").id
    assert read(database, "alice").managed_by_agent_id is None
    for not_an_agent_of_l1 in ("agent-of-other", "alice", "l1", "l2"):
        new = NewNode(RETAIL, login="carol", name="Carol", managed_by_agent_login=not_an_agent_of_l1)
        assert refused(database, "l1", new) == "agent_not_of_owner", not_an_agent_of_l1


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE nodes;--",
        "<script>alert('x')</script>",
        'O\'Brien & Sons "Telecom" % _ \\ ;',
        "東京テレコム",
    ],
)
def test_a_name_that_looks_like_an_attack_is_stored_and_read_back_verbatim(database: Database, name: str) -> None:
    chain_of_resellers(database)
    created = service.create_node(database, owner_login="l1", new=NewNode(RETAIL, login="mallory", name=name))
    assert created.name == name
    assert read(database, "mallory").name == name
    assert row_counts(database)[0] == 5


def test_a_node_that_does_not_exist_is_not_found(database: Database) -> None:
    provider(database)
    for use_case in (
        lambda: service.set_status(database, login="ghost", status=Status.SUSPENDED),
        lambda: service.set_grants(database, login="ghost", grants=Grants()),
        lambda: service.set_limits(database, login="ghost", clients_limit=1, concurrent_calls_limit=1),
        lambda: service.effective_status(database, login="ghost"),
    ):
        with pytest.raises(Refusal) as refusal:
            use_case()
        assert refusal.value.reason == "node_not_found"


def test_limits_are_set_and_negative_limits_refused(database: Database) -> None:
    chain_of_resellers(database)
    updated = service.set_limits(database, login="l1", clients_limit=10, concurrent_calls_limit=4)
    assert (updated.clients_limit, updated.concurrent_calls_limit) == (10, 4)
    for clients_limit, concurrent_calls_limit, reason in (
        (-1, 4, "clients_limit_invalid"),
        (10, -1, "concurrent_calls_limit_invalid"),
    ):
        with pytest.raises(Refusal) as refusal:
            service.set_limits(
                database, login="l1", clients_limit=clients_limit, concurrent_calls_limit=concurrent_calls_limit
            )
        assert refusal.value.reason == reason
    assert (read(database, "l1").clients_limit, read(database, "l1").concurrent_calls_limit) == (10, 4)


def test_closing_is_refused_while_money_is_reserved_on_the_wallet(database: Database) -> None:
    chain_of_resellers(database)
    create(database, "l1", RETAIL, "postpaid", credit_limit_micros=1_000_000)
    with database.reading() as connection:
        wallet = account_id(connection, read(database, "postpaid"), AccountPurpose.WALLET)
        revenue = account_id(connection, read(database, "l1"), AccountPurpose.REVENUE)
    # A live call reserves 0.50 on the credit line: the posted balance is still exactly zero.
    ledger.execute(
        database,
        [
            TransferRequest(
                id="call-1",
                amount_micros=500_000,
                debit_account_id=wallet,
                credit_account_id=revenue,
                phase=Phase.PENDING,
            )
        ],
    )
    with pytest.raises(Refusal) as refusal:
        service.set_status(database, login="postpaid", status=Status.CLOSED)
    assert refusal.value.reason == "reservations_open"
    ledger.execute(
        database, [TransferRequest(id="call-1-end", amount_micros=None, phase=Phase.VOID, pending_id="call-1")]
    )
    assert service.set_status(database, login="postpaid", status=Status.CLOSED).status is Status.CLOSED


def test_two_creations_racing_for_one_login_give_one_node_and_one_clean_refusal(database: Database) -> None:
    chain_of_resellers(database)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            create(database, "l1", RETAIL, "same-login")
            outcomes.append("created")
        except Refusal as refusal:
            outcomes.append(refusal.reason)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "login_taken", "login_taken", "login_taken"]
