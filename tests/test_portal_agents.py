"""An agent's own pages over HTTP: its commission, the withdrawal of it to its wallet, its monthly statement.

The world is the demo: agent-ana (login ana) sells for north-city at 10 % commission and 0.50 a deposit;
her wallet holds 100.00 (north-city recorded her payment), her commission account nothing; alice and bob
are her customers. nc-admin is north-city's admin, alice a client.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tests.test_agents import balance, commission, revenue
from tests.test_portal import csrf_of, user
from tests.test_portal_accounts import key_of, signed_in
from tollway.access.model import Role
from tollway.store.database import Database


@pytest.fixture
def world(demo_database: Database) -> Database:
    for node, login, role in (
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("agent-ana", "ana", Role.AGENT),
        ("alice", "alice", Role.CLIENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def deposit(client: TestClient, login: str, amount: str) -> None:
    """Ana's deposit through her customer's page: shown with its fee, then confirmed."""
    page = client.get(f"/accounts/{login}")
    shown = client.post(f"/accounts/{login}/deposit", data={"csrf_token": csrf_of(page), "amount": amount})
    confirm = {"csrf_token": csrf_of(shown), "amount": amount, "key": key_of(shown.text), "confirmed": "yes"}
    assert "The deposit is made." in client.post(f"/accounts/{login}/deposit", data=confirm).text


def figure(page_text: str, name: str) -> str:
    found = re.search(rf'id="{name}">([^<]+)<', page_text)
    assert found, name
    return found.group(1)


def test_an_agent_withdraws_its_commission_once_per_form_through_the_ledger(world: Database) -> None:
    client = signed_in(world, "ana")
    revenue_before = revenue(world, "north-city")
    deposit(client, "alice", "10")  # 10.00 to alice, 0.50 fee to north-city, 1.00 commission from north-city
    assert (balance(world, "agent-ana"), commission(world, "agent-ana")) == (Decimal("89.50"), Decimal("1.00"))

    page = client.get("/commission")
    assert page.status_code == 200
    assert figure(page.text, "commission-balance") == "$1.00" and figure(page.text, "commission-accrued") == "$1.00"
    form = {"csrf_token": csrf_of(page), "amount": "0.40", "key": key_of(page.text)}
    for _ in range(2):  # the same form sent twice: moved once
        done = client.post("/commission/withdraw", data=form)
        assert done.status_code == 200 and "The commission is moved to your wallet." in done.text
    assert (balance(world, "agent-ana"), commission(world, "agent-ana")) == (Decimal("89.90"), Decimal("0.60"))
    assert revenue(world, "north-city") - revenue_before == Decimal("-0.50")  # its fee in, the commission out
    shown = client.get("/commission").text
    assert figure(shown, "commission-balance") == "$0.60" and figure(shown, "commission-withdrawn") == "$0.40"


def test_a_withdrawal_over_the_balance_or_not_an_amount_is_a_form_error(world: Database) -> None:
    client = signed_in(world, "ana")
    deposit(client, "alice", "10")
    page = client.get("/commission")
    for amount, words in (
        ("1.01", "This is more than your commission balance."),
        ("2147483649", "This amount is too large."),
        ("2147483", "This is more than your commission balance."),
        ("0", "Enter an amount such as 5 or 12.50."),
        ("-1", "Enter an amount such as 5 or 12.50."),
        ("lots", "Enter an amount such as 5 or 12.50."),
        ("1e400", "This amount is too large."),
    ):
        form = {"csrf_token": csrf_of(page), "amount": amount, "key": key_of(client.get("/commission").text)}
        refused = client.post("/commission/withdraw", data=form)
        assert 400 <= refused.status_code < 500 and words in refused.text, amount
        assert 'name="amount"' in refused.text and f'value="{amount}"' in refused.text
    nul = client.post("/commission/withdraw", data={"csrf_token": csrf_of(page), "amount": "1\x00", "key": "k"})
    assert nul.status_code == 422
    assert client.post("/commission/withdraw", data={"amount": "1", "key": "portal-k"}).status_code == 403
    assert commission(world, "agent-ana") == Decimal("1.00")


def test_an_agents_statement_shows_its_deposits_fees_commission_and_withdrawals(world: Database) -> None:
    client = signed_in(world, "ana")
    deposit(client, "alice", "10")
    page = client.get("/commission")
    client.post("/commission/withdraw", data={"csrf_token": csrf_of(page), "amount": "0.40", "key": key_of(page.text)})

    statement = client.get("/agent-statement")
    assert statement.status_code == 200 and "data-print" in statement.text and 'media="print"' in statement.text
    text = re.sub(r"\s+", " ", statement.text)
    # The demo's month: her payment of 100.00, then the deposit, its fee and the withdrawal.
    assert figure(text, "opening") == "$0.00" and figure(text, "closing") == "$89.90"
    for what, amount in (("Deposit", "-$10.00"), ("Fee", "-$0.50"), ("Commission withdrawn", "$0.40")):
        assert re.search(rf"<td>{what}</td> <td>[^<]*</td> <td class=\"number\">{re.escape(amount)}</td>", text), what
    assert re.search(r"<td>alice</td> <td class=\"number\">\$10.00</td> <td class=\"number\">\$1.00</td>", text)
    assert (figure(text, "accrued"), figure(text, "withdrawn"), figure(text, "commission-balance")) == (
        "$1.00",
        "$0.40",
        "$0.60",
    )

    exported = client.get("/agent-statement.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    by_what = {(r["account"], r["what"]): r for r in rows}
    assert by_what[("wallet", "closing_balance")]["amount"] == "89.900000"
    assert by_what[("wallet", "transfer")]["amount"] == "-10.000000"
    assert by_what[("wallet", "fee")]["amount"] == "-0.500000"
    assert by_what[("wallet", "commission")]["amount"] == "0.400000"
    earned = by_what[("commission", "commission")]
    assert (earned["client"], earned["deposit"], earned["amount"], earned["currency"]) == (
        "alice",
        "10.000000",
        "1.000000",
        "USD",
    )
    assert by_what[("commission", "withdrawn")]["amount"] == "-0.400000"

    assert client.get("/agent-statement", params={"month": "1999-01"}).status_code == 422
    assert client.get("/agent-statement.csv", params={"month": "garbage"}).status_code == 422


def test_amounts_follow_the_agents_language(world: Database) -> None:
    client = signed_in(world, "ana")
    deposit(client, "alice", "10")
    settings = client.get("/settings")
    client.post("/settings/language", data={"csrf_token": csrf_of(settings), "language": "pl"})
    page = client.get("/commission").text
    assert "Prowizja" in page and figure(page, "commission-balance") == "1,00\xa0USD"


def test_the_agents_pages_are_for_agents_only(world: Database) -> None:
    for login in ("nc-admin", "alice"):
        client = signed_in(world, login)
        for path in ("/commission", "/agent-statement", "/agent-statement.csv"):
            assert client.get(path).status_code == 404, (login, path)
        token = csrf_of(client.get("/settings"))
        refused = client.post("/commission/withdraw", data={"csrf_token": token, "amount": "1", "key": "portal-k"})
        assert refused.status_code == 404, login
    assert commission(world, "agent-ana") == Decimal(0)
