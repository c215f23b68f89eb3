"""Agents and money movement, as the provider, the reseller and the agent see it through the API.

The world: the house (provider, USD) owns city, a level-1 reseller, which has an agent, ana, and a
customer profile, "prepaid". Every amount below is worked out by hand; the ledger check runs after
every test (tests/conftest.py).
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from tollway.access import service as access
from tollway.access.model import Role
from tollway.agents import batch as batches
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile, commission_micros, commission_ppm_of
from tollway.balances import service as balances
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.http.app import create_app
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.money import to_micros
from tollway.rating import service as rating
from tollway.store.database import Database
from tollway.store.schema import nodes
from tollway.tree import service as tree
from tollway.tree.model import AGENT, ClientType, client, reseller


def build(database: Database) -> None:
    tree.create_provider(database, login="house", name="House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="city", name="City"))
    tree.create_node(database, owner_login="city", new=tree.NewNode(position=AGENT, login="ana", name="Ana"))
    rating.create_tariff(database, owner_login="city", name="retail")
    agents.put_profile(
        database,
        owner_login="city",
        profile=CustomerProfile(name="prepaid", client_type="retail", login_prefix="c", tariff="city:retail"),
    )


class Api:
    """One caller of the HTTP API, with its own API key."""

    def __init__(self, http: TestClient, database: Database, login: str, role: Role) -> None:
        _, key = access.create_api_key(database, None, node_login=login, name=f"{login}-key", role=role)
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        response = self.http.post(f"/api/v1{path}", json=body, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json() if response.headers["content-type"].startswith("application/json") else response.text

    def put(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        response = self.http.put(f"/api/v1{path}", json=body, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, expect: int = 200, **params: str) -> Any:
        response = self.http.get(f"/api/v1{path}", params=params, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def http(database: Database) -> Iterator[TestClient]:
    build(database)
    with TestClient(create_app(database)) as client_:
        yield client_


def balance(database: Database, login: str) -> Decimal:
    return Decimal(balances.get_balance(database, login=login).balance_micros) / 1_000_000


def commission(database: Database, login: str) -> Decimal:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        account = ledger_store.get_account(connection, account_id(connection, node, AccountPurpose.COMMISSION))
        assert account is not None
        return Decimal(account.balance_micros) / 1_000_000


def revenue(database: Database, login: str) -> Decimal:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        account = ledger_store.get_account(connection, account_id(connection, node, AccountPurpose.REVENUE))
        assert account is not None
        return Decimal(account.balance_micros) / 1_000_000


def test_the_agent_story_with_every_balance_at_every_step(database: Database, http: TestClient) -> None:
    house = Api(http, database, "house", Role.PROVIDER_ADMIN)
    city = Api(http, database, "city", Role.RESELLER_ADMIN)
    ana = Api(http, database, "ana", Role.AGENT)

    # 1. The provider sets ana up: 10 % commission, 0.50 per top-up, 1.00 per new account, profile "prepaid".
    terms = house.put(
        "/agents/ana/terms",
        {"commission_percent": "10", "topup_fee": "0.50", "account_fee": "1.00", "profiles": ["prepaid"]},
    )
    assert terms["commission_percent"] == "10" and terms["profiles"] == ["prepaid"]
    assert ana.get("/agents/ana/terms")["account_fee"] == "1.000000"

    # 2. Ana pays 100.00; her reseller records it.
    city.post("/nodes/ana/payments", {"id": "ana-pay-1", "amount": "100.00", "reference": "bank transfer 2211"})
    assert balance(database, "ana") == Decimal("100")

    # 3. She makes 10 customers with 5.00 each: per customer 1.00 + 5.00 + 0.50 = 6.50, 65.00 in all.
    made = ana.post(
        "/nodes/city/batches", {"id": "ana-b1", "profile": "prepaid", "count": 10, "initial_balance": "5"}, expect=201
    )
    rows = list(csv.DictReader(io.StringIO(made)))
    assert len(rows) == 10 and all(r["balance"] == "5.000000" and r["currency"] == "USD" for r in rows)
    assert all(r["login"].startswith("c") and len(r["password"]) == 16 for r in rows)
    customers = [r["login"] for r in rows]
    assert balance(database, "ana") == Decimal("35.00")
    assert commission(database, "ana") == Decimal("5.00")  # 10 % of 50.00
    assert revenue(database, "city") == Decimal("10.00")  # 10.00 + 5.00 fees - 5.00 commission
    assert all(balance(database, c) == Decimal("5") for c in customers)
    assert ana.get(f"/nodes/{customers[0]}")["managed_by_agent_id"] is None  # her limited view

    # 4. A customer pays 20.00 himself, recorded by the reseller: ana earns 2.00.
    city.post(f"/nodes/{customers[0]}/payments", {"id": "c0-pay-1", "amount": "20.00"})
    assert balance(database, customers[0]) == Decimal("25.00")
    assert commission(database, "ana") == Decimal("7.00")
    assert revenue(database, "city") == Decimal("8.00")

    # 5. Ana deposits 10.00 into another (a top-up, to her): 10.50 from her wallet, 1.00 commission.
    ana.post(f"/nodes/{customers[1]}/topups", {"id": "ana-dep-1", "amount": "10.00"})
    assert balance(database, "ana") == Decimal("24.50")
    assert balance(database, customers[1]) == Decimal("15.00")
    assert commission(database, "ana") == Decimal("8.00")
    assert revenue(database, "city") == Decimal("7.50")

    # 6. 24.10 + 0.50 is more than her 24.50: refused whole, nothing moves.
    refused = ana.post("/agents/ana/deposits", {"id": "ana-dep-2", "client": customers[2], "amount": "24.10"}, 422)
    assert refused["reason"] == "insufficient_funds"
    assert balance(database, "ana") == Decimal("24.50") and balance(database, customers[2]) == Decimal("5")
    assert commission(database, "ana") == Decimal("8.00") and revenue(database, "city") == Decimal("7.50")

    # 7. She moves her commission to her wallet.
    moved = ana.post("/agents/ana/commission/withdrawals", {"id": "ana-w-1"})
    assert moved["balance"]["balance"] == "32.500000"
    assert commission(database, "ana") == Decimal("0")
    again = ana.post("/agents/ana/commission/withdrawals", {"id": "ana-w-1"})  # a retry: the first answer
    assert again["already_recorded"] is True and balance(database, "ana") == Decimal("32.50")

    # 8. Her statement: 12 deposits worth 80.00, 8.00 accrued and withdrawn.
    now = utc_now()
    period = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}
    statement = ana.get("/agents/ana/commissions", **period)
    assert len(statement["lines"]) == 12
    assert (statement["deposits"], statement["accrued"], statement["withdrawn"], statement["balance"]) == (
        "80.000000",
        "8.000000",
        "8.000000",
        "0.000000",
    )
    assert {line["client"] for line in statement["lines"]} == set(customers)
    assert city.get("/agents/ana/commissions", **period)["accrued"] == "8.000000"  # her reseller sees it too
    # The reseller is where every cent ended: 15.50 fees in, 8.00 commission out.
    assert revenue(database, "city") == Decimal("7.50")


def test_an_agent_cannot_create_money_nor_reach_other_clients(database: Database, http: TestClient) -> None:
    city = Api(http, database, "city", Role.RESELLER_ADMIN)
    ana = Api(http, database, "ana", Role.AGENT)
    tree.create_node(database, owner_login="city", new=tree.NewNode(position=AGENT, login="ben", name="Ben"))
    tree.create_node(
        database,
        owner_login="city",
        new=tree.NewNode(
            position=client(ClientType.RETAIL), login="bens-client", name="B", managed_by_agent_login="ben"
        ),
    )
    # Her top-up of a client is a deposit from her own (empty) wallet, never credit from her reseller.
    made = city.post("/nodes/city/batches", {"id": "b", "profile": "prepaid", "count": 1, "agent": "ana"}, 201)
    mine = next(csv.DictReader(io.StringIO(made)))["login"]
    assert ana.post(f"/nodes/{mine}/topups", {"id": "t1", "amount": "1"}, 422)["reason"] == "insufficient_funds"
    assert ana.post("/nodes/bens-client/topups", {"id": "t2", "amount": "1"}, 404)["reason"] == "node_not_found"
    refused = ana.post(f"/nodes/{mine}/payments", {"id": "t3", "amount": "1"}, 422)
    assert refused["reason"] == "agent_records_no_payments"
    assert ana.put("/agents/ana/terms", {"commission_percent": "99"}, 403)["reason"] == "forbidden"
    assert ana.get("/agents/ben/terms", 404)["reason"] == "node_not_found"
    # Fewer than 10 at a time, or a profile not hers, is refused.
    refused = ana.post("/nodes/city/batches", {"id": "b2", "profile": "prepaid", "count": 9}, 422)
    assert refused["reason"] == "batch_size_invalid"
    assert ana.post("/nodes/city/batches", {"id": "b3", "profile": "prepaid", "count": 10}, 422)["reason"] == (
        "profile_not_allowed"
    )
    assert balance(database, mine) == 0 and balance(database, "ana") == 0


def test_a_reseller_batch_tops_up_from_issuance_and_is_never_made_twice(database: Database) -> None:
    build(database)
    made = batches.create_batch(
        database,
        owner_login="city",
        profile_name="prepaid",
        count=25,
        batch_id="spring",
        initial_balance_micros=2_500_000,
    )
    assert len({a.login for a in made.accounts}) == 25
    assert all(balance(database, a.login) == Decimal("2.5") for a in made.accounts)
    with pytest.raises(Refusal, match="batch_exists"):
        batches.create_batch(database, owner_login="city", profile_name="prepaid", count=25, batch_id="spring")
    # The generated password logs in, once hashed fast, then it is rehashed with argon2id.
    principal = access.login_with_password(database, login=made.accounts[0].login, password=made.accounts[0].password)
    assert principal.role is Role.CLIENT
    with pytest.raises(Refusal, match="login_failed"):
        access.login_with_password(database, login=made.accounts[1].login, password="not-the-password")


def test_a_batch_the_agent_cannot_pay_for_leaves_nothing(database: Database) -> None:
    build(database)
    agents.set_terms(database, agent_login="ana", terms=AgentTerms(100_000, 500_000, 1_000_000), profiles=["prepaid"])
    balances.topup(database, login="ana", amount_micros=to_micros("64.99"), transfer_id="ana-1")
    with pytest.raises(Refusal, match="insufficient_funds"):
        batches.create_batch(
            database,
            owner_login="city",
            profile_name="prepaid",
            count=10,
            batch_id="too-dear",
            initial_balance_micros=5_000_000,
            agent_login="ana",
        )  # 65.00 needed
    with database.reading() as connection:
        assert connection.execute(select(func.count()).select_from(nodes)).scalar_one() == 3  # house, city, ana
    assert balance(database, "ana") == Decimal("64.99")


def test_refunds_and_reversals_are_new_transfers(database: Database) -> None:
    build(database)
    agents.set_terms(database, agent_login="ana", terms=AgentTerms(100_000, 500_000, 0), profiles=["prepaid"])
    balances.topup(database, login="ana", amount_micros=to_micros("20"), transfer_id="ana-1")
    made = batches.create_batch(database, owner_login="city", profile_name="prepaid", count=1, batch_id="one")
    c = made.accounts[0].login
    with pytest.raises(Refusal, match="client_not_managed"):
        agents.deposit(database, client_login=c, amount_micros=1, transfer_id="x", agent_login="ana")
    made = batches.create_batch(
        database, owner_login="city", profile_name="prepaid", count=10, batch_id="two", agent_login="ana"
    )
    c = made.accounts[0].login
    agents.deposit(database, client_login=c, amount_micros=to_micros("10"), transfer_id="dep", agent_login="ana")
    assert balance(database, "ana") == Decimal("9.50") and commission(database, "ana") == Decimal("1")
    # Reversing the deposit takes back the money, the fee and the commission together.
    balances.reverse(database, login=c, transfer_id="dep", reason="paid by mistake")
    assert balance(database, "ana") == Decimal("20") and commission(database, "ana") == 0 and balance(database, c) == 0
    again = balances.reverse(database, login=c, transfer_id="dep", reason="paid by mistake")
    assert again.already_existed
    balances.topup(database, login=c, amount_micros=to_micros("3"), transfer_id="t")
    balances.refund(database, login=c, amount_micros=to_micros("1.25"), reason="unused credit", transfer_id="r")
    assert balance(database, c) == Decimal("1.75")
    with pytest.raises(Refusal, match="insufficient_funds"):
        balances.refund(database, login=c, amount_micros=to_micros("2"), reason="too much", transfer_id="r2")
    with pytest.raises(Refusal, match="insufficient_funds"):
        balances.reverse(database, login=c, transfer_id="t", reason="spent already")  # 3.00 > 1.75 left


def test_two_agents_racing_deposits_never_break_a_wallets_floor(database: Database) -> None:
    """Ana and Ben each have 25.00 and two clerks depositing 2.50 (+ 0.50 fee) at once, 8 times each."""
    build(database)
    tree.create_node(database, owner_login="city", new=tree.NewNode(position=AGENT, login="ben", name="Ben"))
    clients: dict[str, list[str]] = {}
    for agent in ("ana", "ben"):
        agents.set_terms(database, agent_login=agent, terms=AgentTerms(100_000, 500_000, 0), profiles=["prepaid"])
        balances.topup(database, login=agent, amount_micros=to_micros("25"), transfer_id=f"{agent}-1")
        made = batches.create_batch(
            database, owner_login="city", profile_name="prepaid", count=4, batch_id=f"race-{agent}", agent_login=agent
        )
        clients[agent] = [a.login for a in made.accounts]
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def clerk(agent: str, clerk_no: int) -> None:
        for n in range(8):
            try:
                agents.deposit(
                    database,
                    client_login=clients[agent][n % 4],
                    amount_micros=to_micros("2.50"),
                    transfer_id=f"{agent}-{clerk_no}-{n}",
                    agent_login=agent,
                )
                result = "ok"
            except Refusal as refusal:
                result = refusal.reason
            with lock:
                outcomes.append((agent, result))

    threads = [threading.Thread(target=clerk, args=(a, c)) for a in ("ana", "ben") for c in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for agent in ("ana", "ben"):
        # 25.00 pays exactly 8 deposits of 3.00 (8 x 3.00 = 24.00); the other 8 are refused whole.
        assert outcomes.count((agent, "ok")) == 8 and outcomes.count((agent, "insufficient_funds")) == 8
        assert balance(database, agent) == Decimal("1.00")
        assert commission(database, agent) == Decimal("2.00")  # 8 x 0.25
        assert sum(balance(database, c) for c in clients[agent]) == Decimal("20.00")


@pytest.mark.parametrize(
    ("percent", "ppm"), [("10", 100_000), ("12.5", 125_000), ("0.0001", 1), ("100", 1_000_000), ("0", 0)]
)
def test_commission_percentages_are_exact(percent: str, ppm: int) -> None:
    assert commission_ppm_of(percent) == ppm


def test_commission_rounds_half_up_to_the_micro_unit() -> None:
    assert commission_micros(5_000_000, 100_000) == 500_000
    assert commission_micros(5, 100_000) == 1  # 0.5 micro-unit rounds up
    assert commission_micros(4, 100_000) == 0
    with pytest.raises(Refusal):
        commission_ppm_of("100.5")
    with pytest.raises(Refusal):
        commission_ppm_of("1.00001")


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    ppm=st.integers(min_value=0, max_value=1_000_000),
)
def test_commission_is_the_exact_share_rounded_half_up(amount: int, ppm: int) -> None:
    exact = Decimal(amount) * Decimal(ppm) / Decimal(1_000_000)
    expected = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert commission_micros(amount, ppm) == expected
    assert 0 <= commission_micros(amount, ppm) <= amount


@given(percent=st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False))
def test_every_percentage_with_four_decimals_round_trips(percent: Decimal) -> None:
    terms = AgentTerms(commission_ppm=commission_ppm_of(percent))
    assert terms.commission_percent == percent


def test_an_agent_pays_its_account_fee_for_a_client_made_one_at_a_time(database: Database, http: TestClient) -> None:
    ana = Api(http, database, "ana", Role.AGENT)
    agents.set_terms(database, agent_login="ana", terms=AgentTerms(0, 0, 1_000_000))
    new = {"owner": "city", "login": "dora", "name": "Dora", "kind": "client", "client_type": "retail"}
    # With nothing in her wallet, the client is not created at all.
    assert ana.post("/nodes", new, 422)["reason"] == "insufficient_funds"
    with database.reading() as connection:
        assert connection.execute(select(func.count()).select_from(nodes)).scalar_one() == 3
    balances.topup(database, login="ana", amount_micros=to_micros("2.50"), transfer_id="ana-1")
    assert ana.post("/nodes", new, 201)["login"] == "dora"
    assert balance(database, "ana") == Decimal("1.50") and revenue(database, "city") == Decimal("1.00")


def test_a_batch_reports_its_progress_to_the_end(database: Database) -> None:
    build(database)
    agents.set_terms(database, agent_login="ana", terms=AgentTerms(100_000, 500_000, 1_000_000), profiles=["prepaid"])
    balances.topup(database, login="ana", amount_micros=to_micros("1000"), transfer_id="ana-1")
    steps: list[int] = []
    batches.create_batch(
        database,
        owner_login="city",
        profile_name="prepaid",
        count=333,  # 4 transfers each: 1,332, in two ledger batches of at most 1,000
        batch_id="progress",
        initial_balance_micros=1_000_000,
        agent_login="ana",
        progress=steps.append,
    )
    assert sum(steps) == batches.progress_total(333) and all(step >= 0 for step in steps)
