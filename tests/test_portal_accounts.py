"""The staff's account pages over HTTP: a reseller's and the provider's accounts below them, an agent's
clients in its limited view; forms with their CSRF token, money moved once per form, 404 across tenants.

The world is the demo (tollway demo) with a login per role: root (the provider), nc-admin (north-city, an
L1 reseller with the clients alice, bob, trunk-one... and the agent agent-ana), bw-admin (bluewave-retail,
another reseller with the client dave), ana (agent-ana: alice and bob are its clients, 0.50 a deposit).
"""

from __future__ import annotations

import re

import pytest

from tests.test_portal import browser, csrf_of, log_in, user
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import Status


@pytest.fixture
def staff_world(demo_database: Database) -> Database:
    for node, login, role in (
        ("house", "root", Role.PROVIDER_ADMIN),
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("bluewave-retail", "bw-admin", Role.RESELLER_ADMIN),
        ("agent-ana", "ana", Role.AGENT),
        ("alice", "alice", Role.CLIENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def signed_in(database: Database, login: str):  # type: ignore[no-untyped-def]
    client = browser(database)
    assert log_in(client, login).status_code == 303
    return client


def key_of(page_text: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page_text)
    assert found, "the form has no idempotency key"
    return found.group(1)


def test_a_reseller_lists_searches_and_pages_its_accounts(staff_world: Database) -> None:
    client = signed_in(staff_world, "nc-admin")
    listed = client.get("/accounts")
    assert listed.status_code == 200
    for login in ("alice", "bob", "trunk-one", "agent-ana", "corner-shop"):
        assert f'href="/accounts/{login}"' in listed.text, login
    for other in ("north-city", "carol", "dave", "atlas-north"):  # itself, and nobody else's
        assert f'href="/accounts/{other}"' not in listed.text, other
    found = client.get("/accounts", params={"q": "ALI"})
    assert 'href="/accounts/alice"' in found.text and 'href="/accounts/bob"' not in found.text
    agents_only = client.get("/accounts", params={"kind": "agent"})
    assert 'href="/accounts/agent-ana"' in agents_only.text and 'href="/accounts/alice"' not in agents_only.text
    assert client.get("/accounts", params={"kind": "planet"}).status_code == 422


def test_a_reseller_creates_a_client_tops_it_up_once_and_suspends_it(staff_world: Database) -> None:
    client = signed_in(staff_world, "nc-admin")
    form = client.get("/accounts/new")
    assert form.status_code == 200 and 'value="client:retail"' in form.text
    created = client.post(
        "/accounts/new",
        data={
            "csrf_token": csrf_of(form),
            "owner": "north-city",
            "position": "client:retail",
            "login": "zoe",
            "name": "Zoë <b>Retail</b>",
            "credit_limit": "5",
        },
        follow_redirects=False,
    )
    assert (created.status_code, created.headers["location"]) == (303, "/accounts/zoe?saved=created")
    page = client.get("/accounts/zoe")
    assert "Zoë &lt;b&gt;Retail&lt;/b&gt;" in page.text and "<b>Retail" not in page.text
    key = key_of(page.text)
    for _ in range(2):  # the same form sent twice: topped up once
        sent = client.post("/accounts/zoe/topup", data={"csrf_token": csrf_of(page), "amount": "12.50", "key": key})
        assert sent.status_code == 200 and "The top-up is recorded." in sent.text
    balance = balances.get_balance(staff_world, login="zoe")
    assert (balance.balance_micros, balance.credit_limit_micros) == (12_500_000, 5_000_000)
    assert '<p class="figure" id="available">$17.50</p>' in client.get("/accounts/zoe").text
    suspended = client.post("/accounts/zoe/status", data={"csrf_token": csrf_of(page), "status": "suspended"})
    assert "Suspended" in suspended.text
    assert tree.get_node(staff_world, None, login="zoe").status is Status.SUSPENDED


def test_a_refused_form_says_why_and_changes_nothing(staff_world: Database) -> None:
    client = signed_in(staff_world, "nc-admin")
    page = client.get("/accounts/alice")
    token = csrf_of(page)
    bad = client.post("/accounts/alice/topup", data={"csrf_token": token, "amount": "lots", "key": key_of(page.text)})
    assert bad.status_code == 422 and "Enter an amount such as 5 or 12.50." in bad.text
    taken = client.post(
        "/accounts/new",
        data={"csrf_token": token, "owner": "north-city", "position": "client:retail", "login": "bob", "name": "B"},
    )
    assert taken.status_code == 409 and 'value="bob"' in taken.text
    assert client.post("/accounts/alice/topup", data={"amount": "1", "key": "k-1"}).status_code == 403
    assert balances.get_balance(staff_world, login="alice").balance_micros == 25_000_000


def test_a_reseller_cannot_open_or_change_another_resellers_client(staff_world: Database) -> None:
    client = signed_in(staff_world, "bw-admin")
    assert client.get("/accounts/alice").status_code == 404
    assert client.get("/accounts/new", params={"owner": "north-city"}).status_code == 404
    token = csrf_of(client.get("/accounts/dave"))
    for path, data in (
        ("/accounts/alice/topup", {"amount": "1", "key": "portal-x"}),
        ("/accounts/alice/status", {"status": "suspended"}),
        ("/accounts/alice/credit-limit", {"credit_limit": "100"}),
    ):
        refused = client.post(path, data={"csrf_token": token, **data})
        assert refused.status_code == 404 and "alice" not in refused.text.replace("/accounts/alice", ""), path
    assert client.get("/accounts", params={"within": "north-city"}).status_code == 404


def test_an_agent_sees_its_clients_in_its_limited_view_and_deposits_after_seeing_its_fee(
    staff_world: Database,
) -> None:
    client = signed_in(staff_world, "ana")
    listed = client.get("/accounts")
    assert 'href="/accounts/alice"' in listed.text and 'href="/accounts/bob"' in listed.text
    assert 'href="/accounts/trunk-one"' not in listed.text and "/accounts/new" not in listed.text
    page = client.get("/accounts/alice")
    assert "Credit limit" not in page.text and "Tariff" not in page.text and "Time zone" not in page.text
    preview = client.post("/accounts/alice/deposit", data={"csrf_token": csrf_of(page), "amount": "10"})
    assert preview.status_code == 200
    shown = re.sub(r"\s+", " ", preview.text)
    assert "<dt>Your fee</dt><dd>$0.50</dd>" in shown and "<dt>Taken from your wallet</dt><dd>$10.50</dd>" in shown
    assert balances.get_balance(staff_world, login="alice").balance_micros == 25_000_000  # nothing yet
    confirm = {"csrf_token": csrf_of(preview), "amount": "10", "key": key_of(preview.text), "confirmed": "yes"}
    done = client.post("/accounts/alice/deposit", data=confirm)
    assert "The deposit is made." in done.text
    client.post("/accounts/alice/deposit", data=confirm)  # sent again: deposited once
    assert balances.get_balance(staff_world, login="alice").balance_micros == 35_000_000
    assert balances.get_balance(staff_world, login="agent-ana").balance_micros == 100_000_000 - 10_500_000
    assert client.get("/accounts/trunk-one").status_code == 404
    assert client.get("/accounts/new").status_code == 404


def test_account_pages_are_for_staff_only(staff_world: Database) -> None:
    client = signed_in(staff_world, "alice")
    for path in ("/accounts", "/accounts/alice", "/accounts/new"):
        assert client.get(path).status_code == 404, path
