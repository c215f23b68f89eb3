"""A refusal for funds says the numbers a person needs: who pays, what it needs (and what that is made of),
what it has available; at the currency's precision, what is needed rounded up and what is there down.

The demo's agent-ana pays 0.50 a deposit and 1.00 a new account (tollway.demo).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.http.app import create_app
from tollway.ledger.model import Shortfall
from tollway.ledger.store import needs
from tollway.store.database import Database


def api(database: Database, node_login: str, role: Role) -> TestClient:
    _, plaintext = access.create_api_key(database, None, node_login=node_login, name="k", role=role)
    client = TestClient(create_app(database), base_url="https://testserver")
    client.headers["Authorization"] = f"Bearer {plaintext}"
    return client


def refusal(response: object) -> tuple[int, str, str]:
    answer = response.json()  # type: ignore[attr-defined]
    return response.status_code, answer["reason"], answer["message"]  # type: ignore[attr-defined]


@pytest.fixture
def ana_has_24_50(demo_database: Database) -> TestClient:
    """agent-ana, her wallet brought down to 24.50 available by a deposit into alice (plus its 0.50 fee)."""
    ana = api(demo_database, "agent-ana", Role.AGENT)
    available = Decimal(ana.get("/api/v1/nodes/agent-ana/balance").json()["available"])
    spend = available - Decimal("24.50") - Decimal("0.50")
    assert spend > 0
    made = ana.post("/api/v1/agents/agent-ana/deposits", json={"id": "d-0", "client": "alice", "amount": str(spend)})
    assert made.status_code == 200, made.text
    assert ana.get("/api/v1/nodes/agent-ana/balance").json()["available"] == "24.500000"
    return ana


def test_an_agents_deposit_refused_for_funds_says_amount_fee_and_what_is_available(ana_has_24_50: TestClient) -> None:
    refused = ana_has_24_50.post(
        "/api/v1/agents/agent-ana/deposits", json={"id": "d-1", "client": "alice", "amount": "24.10"}
    )
    assert refusal(refused) == (
        422,
        "insufficient_funds",
        "agent-ana needs 24.60 USD (24.10 + fee 0.50), 24.50 USD available",
    )
    # Refused at the amount itself, the fee is still counted in what it needs.
    refused = ana_has_24_50.post(
        "/api/v1/agents/agent-ana/deposits", json={"id": "d-2", "client": "alice", "amount": "30"}
    )
    assert refusal(refused)[2] == "agent-ana needs 30.50 USD (30.00 + fee 0.50), 24.50 USD available"


def test_a_batch_by_an_agent_is_refused_whole_with_its_cost_part_by_part(ana_has_24_50: TestClient) -> None:
    refused = ana_has_24_50.post(
        "/api/v1/nodes/north-city/batches",
        json={"id": "b-1", "profile": "prepaid", "count": 10, "initial_balance": "10", "agent": "agent-ana"},
    )
    assert refusal(refused) == (
        422,
        "insufficient_funds",
        "agent-ana needs 115.00 USD (10 accounts x (10.00 + fee 0.50 + account fee 1.00)), 24.50 USD available",
    )


def test_a_new_account_an_agent_cannot_pay_the_fee_of(demo_database: Database, ana_has_24_50: TestClient) -> None:
    spent = ana_has_24_50.post(
        "/api/v1/agents/agent-ana/deposits", json={"id": "d-3", "client": "alice", "amount": "23.50"}
    )
    assert spent.status_code == 200  # 24.50 - 23.50 - 0.50: 0.50 left
    new = {"owner": "north-city", "login": "newbie", "name": "N", "kind": "client", "client_type": "retail"}
    assert refusal(ana_has_24_50.post("/api/v1/nodes", json=new)) == (
        422,
        "insufficient_funds",
        "agent-ana needs 1.00 USD (account fee), 0.50 USD available",
    )


def test_an_owners_corrections_and_moves_say_whose_wallet_falls_short(demo_database: Database) -> None:
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    adjusted = city.post("/api/v1/nodes/alice/adjustments", json={"id": "a-1", "amount": "-30", "reason": "x"})
    assert refusal(adjusted) == (422, "insufficient_funds", "alice needs 30.00 USD, 25.00 USD available")
    refunded = city.post("/api/v1/nodes/bob/refunds", json={"id": "r-1", "amount": "12.345", "reason": "unused"})
    assert refusal(refunded)[2] == "bob needs 12.35 USD, 10.00 USD available"  # needed: rounded up


def test_a_commission_withdrawal_beyond_what_accrued(demo_database: Database) -> None:
    ana = api(demo_database, "agent-ana", Role.AGENT)
    refused = ana.post("/api/v1/agents/agent-ana/commission/withdrawals", json={"id": "w-1", "amount": "5000"})
    status, reason, message = refusal(refused)
    assert (status, reason) == (422, "insufficient_funds")
    assert message.startswith("agent-ana's commission needs 5000.00 USD, ") and message.endswith(" USD available")


@pytest.mark.parametrize(
    ("currency", "needed", "available", "shown"),
    [
        ("USD", 24_600_000, 24_500_000, "24.60 USD, 24.50 USD available"),
        ("USD", 24_600_001, 24_509_999, "24.61 USD, 24.50 USD available"),  # never shown less than it needs
        ("JPY", 1_500_400_000, 999_999_999, "1501 JPY, 999 JPY available"),  # or more than it has
        ("KWD", 1_234_500, 0, "1.235 KWD, 0.000 KWD available"),
        ("USD", 5_000_000, -2_500_000, "5.00 USD, -2.50 USD available"),  # a debt shows as one
    ],
)
def test_amounts_at_the_currencys_precision(currency: str, needed: int, available: int, shown: str) -> None:
    assert needs(Shortfall(1, currency, needed, available)) == shown
